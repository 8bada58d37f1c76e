"""Install the handseg plug-in into GIMP 3.

GIMP runs Python plug-ins with its own Python, which has GIMP's bindings (`gi`) but not handseg.
`install` finds that Python, makes a virtual environment with it that also sees the system's
packages (so `gi` stays importable), pip-installs handseg into it, and writes the plug-in folder
`<plug-ins>/handseg/`: the environment in `venv/` and a launcher `handseg.py` that runs
`handseg_plugins.gimp.plugin` from it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from handseg_core import HandsegError, __version__, atomic

PLUGIN_NAME = "handseg"
VENV_FOLDER = "venv"
ENV_GIMP_PYTHON = "HANDSEG_GIMP_PYTHON"
SIGNATURE = "written by `handseg install gimp`"

PROBE = "import sys, gi; gi.require_version('Gimp', '3.0'); print('%d.%d' % sys.version_info[:2])"
SITE_QUERY = "import json, sysconfig; print(json.dumps([sysconfig.get_path('purelib'), sysconfig.get_path('platlib')]))"
CHECK = "import handseg_core, handseg_plugins.gimp.models; print(handseg_core.__version__)"
INTERPRETER_FOLDERS = (
    "/usr/lib/gimp/3.0/interpreters",
    "/usr/lib64/gimp/3.0/interpreters",
    "/usr/lib/x86_64-linux-gnu/gimp/3.0/interpreters",
    "/usr/lib/aarch64-linux-gnu/gimp/3.0/interpreters",
    "/usr/local/lib/gimp/3.0/interpreters",
    "/opt/homebrew/lib/gimp/3.0/interpreters",
    "/Applications/GIMP.app/Contents/Resources/lib/gimp/3.0/interpreters",
)
FALLBACK_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")

LAUNCHER = '''#!{shebang}
"""handseg for GIMP 3, {signature} (handseg {version}).

The plug-in's code is the handseg package installed in {venv}. After upgrading handseg or adding
models, run `handseg install gimp` again: GIMP reads the menus anew when this file changes.
"""

import site
import sys

SITE_FOLDERS = {site_folders!r}

before = list(sys.path)
for folder in SITE_FOLDERS:
    site.addsitedir(folder)
sys.path[:] = [p for p in sys.path if p not in before] + before

try:
    from handseg_plugins.gimp.plugin import main
except ImportError as exc:
    sys.exit(f"handseg: cannot load the GIMP plug-in from {venv} ({{exc}}); run `handseg install gimp` again")

main()
'''


class InstallError(HandsegError):
    """The handseg plug-in cannot be installed into GIMP."""


def default_plugins_dir() -> Path:
    """GIMP 3's plug-ins folder in the user's settings (GIMP3_DIRECTORY moves it, as it does GIMP's)."""
    moved = os.environ.get("GIMP3_DIRECTORY")
    if moved:
        return Path.home() / Path(moved).expanduser() / "plug-ins"
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "GIMP" / "3.0" / "plug-ins"


def _run(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        return subprocess.CompletedProcess(command, 127, "", f"{exc.strerror or exc}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _interpreter_pythons() -> list[str]:
    found = []
    for folder in INTERPRETER_FOLDERS:
        for interp in sorted(Path(folder).glob("*.interp")) if Path(folder).is_dir() else []:
            for line in interp.read_text(errors="replace").splitlines():
                name, sep, program = line.partition("=")
                if sep and Path(name.strip()).name.startswith("python") and Path(program.strip()).is_absolute():
                    found.append(program.strip())
    return found


def python_candidates() -> list[str]:
    """Pythons that GIMP may run plug-ins with, most likely first."""
    on_path = shutil.which("python3")
    candidates = [*_interpreter_pythons(), *FALLBACK_PYTHONS, *([on_path] if on_path else [])]
    return list(dict.fromkeys(candidates))


def probe_python(python: str) -> tuple[str | None, str]:
    """(major.minor, '') when `python` can import GIMP 3's bindings, else (None, why not)."""
    result = _run([python, "-c", PROBE])
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip().splitlines()[-1], ""
    return None, _last_line(result.stderr or result.stdout)


def find_gimp_python(explicit: str | os.PathLike | None = None) -> tuple[str, str]:
    """(path, major.minor) of the Python that runs GIMP 3's plug-ins.

    Raises:
        InstallError: the given Python (argument or HANDSEG_GIMP_PYTHON) lacks GIMP 3's bindings,
            or none of the usual ones has them.
    """
    chosen = explicit or os.environ.get(ENV_GIMP_PYTHON)
    if chosen:
        version, why = probe_python(os.fspath(chosen))
        if version is None:
            raise InstallError(f"{chosen} cannot import GIMP 3's Python bindings ({why}); "
                               "give the Python that GIMP runs its plug-ins with")
        return os.fspath(chosen), version
    tried = []
    for python in python_candidates():
        version, why = probe_python(python)
        if version is not None:
            return python, version
        tried.append(f"{python}: {why}")
    raise InstallError(
        f"found no Python with GIMP 3's bindings (tried {'; '.join(tried) or 'none'}); install GIMP 3 "
        f"(Debian/Ubuntu: apt install gimp python3-gi gir1.2-gimp-3.0) or set {ENV_GIMP_PYTHON} to the Python "
        "that GIMP runs its plug-ins with"
    )


def package_source() -> list[str]:
    """The pip arguments that install this same handseg: its local folder or wheel, else its version."""
    try:
        direct = metadata.distribution("handseg").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    if direct:
        info = json.loads(direct)
        url = urlparse(info.get("url", ""))
        if url.scheme == "file":
            path = Path(url2pathname(unquote(url.path)))
            if path.exists():
                editable = info.get("dir_info", {}).get("editable", False)
                return ["-e", str(path)] if editable else [str(path)]
    return [f"handseg=={__version__}"]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InstallError(f"{target} exists and is not a folder handseg made; move it away and install again")
    launcher = target / f"{PLUGIN_NAME}.py"
    if target.exists() and any(target.iterdir()):
        if not launcher.is_file() or SIGNATURE not in launcher.read_text(errors="replace"):
            raise InstallError(f"{target} exists and was not made by handseg; move it away and install again")


def make_venv(gimp_python: str, version: str, venv: Path) -> Path:
    """A virtual environment of GIMP's Python that also sees the system's packages; reused when it fits.

    Raises:
        InstallError: the environment cannot be made.
    """
    python = venv_python(venv)
    if python.exists() and probe_python(str(python))[0] == version:
        return python
    command = [gimp_python, "-m", "venv", "--clear", "--system-site-packages", str(venv)]
    result = _run(command)
    if result.returncode != 0 or not python.exists():
        raise InstallError(
            f"cannot make a virtual environment with GIMP's Python ({_last_line(result.stderr or result.stdout)}); "
            f"on Debian/Ubuntu: apt install python3-venv, then run: {shlex.join(command)}"
        )
    return python


def pip_install(python: Path, source: list[str]) -> str:
    """pip-install handseg into the environment of `python`; returns the installed version.

    Raises:
        InstallError: pip fails, or handseg does not import afterwards; the message gives the command.
    """
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", *source]
    result = _run(command)
    if result.returncode != 0:
        raise InstallError(f"pip could not install handseg for GIMP ({_last_line(result.stderr or result.stdout)}); "
                           f"fix that, then run: {shlex.join(command)}")
    check = _run([str(python), "-c", CHECK])
    if check.returncode != 0:
        raise InstallError(f"handseg does not import in GIMP's environment ({_last_line(check.stderr)}); "
                           f"run: {shlex.join(command)}")
    return _last_line(check.stdout)


def site_folders(python: Path) -> list[str]:
    """The environment's site-packages folders.

    Raises:
        InstallError: the environment's Python cannot say.
    """
    result = _run([str(python), "-c", SITE_QUERY])
    try:
        return list(dict.fromkeys(json.loads(result.stdout)))
    except ValueError:
        raise InstallError(f"{python} cannot list its site-packages ({_last_line(result.stderr)})") from None


def launcher_text(python: Path, fallback_python: str, venv: Path, folders: list[str]) -> str:
    """The plug-in file: runs with the environment's Python (GIMP's own when the path has spaces,
    which a #! line cannot hold) and puts the environment's packages first either way."""
    shebang = fallback_python if any(ch.isspace() for ch in str(python)) else str(python)
    return LAUNCHER.format(shebang=shebang, signature=SIGNATURE, version=__version__, venv=venv,
                           site_folders=folders)


def write_launcher(target: Path, text: str) -> Path:
    launcher = target / f"{PLUGIN_NAME}.py"
    with atomic.replacing(launcher) as partial:
        partial.write_text(text, encoding="utf-8")
        partial.chmod(0o755)
    return launcher


def install(plugins_dir: Path | None = None, *, gimp_python: str | os.PathLike | None = None) -> str:
    """Install the handseg plug-in into GIMP 3; returns a report of what was done, to print.

    Args:
        plugins_dir: GIMP's plug-ins folder (default: `default_plugins_dir()`, in the user's GIMP
            settings); created when missing.
        gimp_python: the Python that GIMP runs plug-ins with (default: HANDSEG_GIMP_PYTHON, else
            the one GIMP's interpreter files name, else the system's python3), which must be able
            to import GIMP 3's bindings.

    Makes `<plugins_dir>/handseg/venv` with that Python (seeing the system's packages),
    pip-installs this handseg into it (from its own folder or wheel when installed from one, else
    `handseg==<version>`), and writes the executable `<plugins_dir>/handseg/handseg.py`. Installing
    again updates both; restart GIMP afterwards.

    Raises:
        InstallError: no Python with GIMP 3's bindings, `<plugins_dir>/handseg` is not handseg's,
            or the environment or pip fails (the message says what to run).
    """
    folder = Path(plugins_dir).expanduser() if plugins_dir else default_plugins_dir()
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise InstallError(f"{folder} is not a folder; give GIMP's plug-ins folder")
    target = folder / PLUGIN_NAME
    _check_target(target)
    python_path, version = find_gimp_python(gimp_python)
    target.mkdir(parents=True, exist_ok=True)
    venv = target / VENV_FOLDER
    python = make_venv(python_path, version, venv)
    source = package_source()
    installed = pip_install(python, source)
    launcher = write_launcher(target, launcher_text(python, python_path, venv, site_folders(python)))
    ours = "%d.%d" % sys.version_info[:2]
    lines = [
        f"installed the handseg plug-in for GIMP 3 in {launcher}",
        f"GIMP's Python: {python_path} ({version}{'' if version == ours else f'; this handseg runs on {ours}'})",
        f"handseg {installed} installed into {venv} from {' '.join(source)}",
        "restart GIMP; the filters are under Filters > Handseg",
    ]
    return "\n".join(lines)
