from __future__ import annotations

import importlib
import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import handseg_cli
import handseg_plugins.gimp
from handseg_core import HandsegError
from handseg_plugins.gimp.install import SIGNATURE, InstallError, default_plugins_dir, install, package_source

installer = importlib.import_module("handseg_plugins.gimp.install")  # the package's `install` is the function

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake GIMP Python is a #! script")

# Stands in for GIMP's Python and, copied by "-m venv", for the environment's: it records every
# call and answers the questions install() asks, as the settings file says.
FAKE_PYTHON = '''#!{executable}
import json, shutil, sys
from pathlib import Path

me = Path(sys.argv[0])
args = sys.argv[1:]
settings = json.loads(Path({settings!r}).read_text())
with open({log!r}, "a") as log:
    log.write(json.dumps([str(me), *args]) + "\\n")
if args[:1] == ["-c"]:
    if "gi.require_version" in args[1]:
        if not settings["gi"]:
            sys.exit("ModuleNotFoundError: No module named 'gi'")
        print(settings["version"])
    elif "sysconfig" in args[1]:
        print(json.dumps([str(me.parent.parent / "site-packages")] * 2))
    elif "handseg_core" in args[1]:
        print("0.1.0")
elif args[:2] == ["-m", "venv"]:
    if settings["venv_fails"]:
        sys.exit("Error: ensurepip is not available")
    (Path(args[-1]) / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(me, Path(args[-1]) / "bin" / "python")
elif args[:2] == ["-m", "pip"] and settings["pip_fails"]:
    print("Collecting handseg==0.1.0")
    sys.exit("ERROR: No matching distribution found for handseg==0.1.0")
'''


class FakeGimpPython:
    """A fake `python3` of GIMP's; `calls` lists what install() ran with it and its environment."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "python3"
        self.settings = folder / "settings.json"
        self.log = folder / "calls.jsonl"
        self.configure()
        self.path.write_text(FAKE_PYTHON.format(executable=sys.executable, settings=str(self.settings), log=str(self.log)))
        self.path.chmod(0o755)

    def configure(self, gi: bool = True, version: str = "3.13", venv_fails: bool = False, pip_fails: bool = False):
        self.settings.write_text(json.dumps({"gi": gi, "version": version, "venv_fails": venv_fails, "pip_fails": pip_fails}))

    @property
    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def calls_of(self, *command: str) -> list[list[str]]:
        return [call for call in self.calls if call[1:1 + len(command)] == list(command)]


@pytest.fixture
def gimp_python(tmp_path) -> FakeGimpPython:
    return FakeGimpPython(tmp_path / "gimp-bin")


@pytest.fixture(autouse=True)
def _settings_elsewhere(tmp_path, monkeypatch):
    """No real GIMP settings or Pythons: HOME, XDG_CONFIG_HOME and the interpreter folders point into tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.delenv(installer.ENV_GIMP_PYTHON, raising=False)
    monkeypatch.setattr(installer, "INTERPRETER_FOLDERS", ())
    monkeypatch.setattr(installer, "FALLBACK_PYTHONS", ())
    monkeypatch.setattr(installer.shutil, "which", lambda name: None)


def first_line(path: Path) -> str:
    return path.read_text().splitlines()[0]


def test_install_is_reexported():
    assert handseg_plugins.gimp.install is install


def test_install_makes_a_venv_installs_handseg_and_writes_the_plugin(tmp_path, gimp_python):
    plugins = tmp_path / "plug-ins"

    report = install(plugins, gimp_python=gimp_python.path)

    folder = plugins / "handseg"
    launcher, venv = folder / "handseg.py", folder / "venv"
    assert launcher.is_file() and launcher.stat().st_mode & stat.S_IXUSR
    assert first_line(launcher) == f"#!{venv / 'bin' / 'python'}"
    assert SIGNATURE in launcher.read_text() and str(venv / "site-packages") in launcher.read_text()
    assert gimp_python.calls_of("-m", "venv") == [
        [str(gimp_python.path), "-m", "venv", "--clear", "--system-site-packages", str(venv)]]
    (pip,) = gimp_python.calls_of("-m", "pip")
    assert pip[0] == str(venv / "bin" / "python") and pip[-len(package_source()):] == package_source()
    assert str(launcher) in report and f"{gimp_python.path} (3.13" in report and str(venv) in report
    assert "restart GIMP" in report.splitlines()[-1]


def test_the_launcher_runs_the_plugin_from_the_venv_before_anything_else(tmp_path, gimp_python):
    install(tmp_path, gimp_python=gimp_python.path)
    stub = tmp_path / "handseg" / "venv" / "site-packages" / "handseg_plugins" / "gimp"
    stub.mkdir(parents=True)
    (stub.parent / "__init__.py").write_text("")
    (stub / "__init__.py").write_text("")
    (stub / "plugin.py").write_text("def main():\n    print('main of', __file__)\n")

    run = subprocess.run([sys.executable, str(tmp_path / "handseg" / "handseg.py")], capture_output=True, text=True,
                         timeout=60)

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"main of {stub / 'plugin.py'}"


@pytest.mark.skipif(importlib.util.find_spec("gi") is not None, reason="needs a Python without GIMP's bindings")
def test_the_launcher_says_what_to_do_when_the_plugin_cannot_load(tmp_path, gimp_python):
    install(tmp_path, gimp_python=gimp_python.path)

    run = subprocess.run([sys.executable, str(tmp_path / "handseg" / "handseg.py")], capture_output=True, text=True,
                         timeout=60)

    assert run.returncode == 1
    assert run.stderr.strip().startswith("handseg: cannot load the GIMP plug-in from")
    assert run.stderr.strip().endswith("run `handseg install gimp` again")


def test_installing_again_reuses_the_venv_and_rewrites_the_plugin(tmp_path, gimp_python):
    install(tmp_path, gimp_python=gimp_python.path)
    launcher = tmp_path / "handseg" / "handseg.py"
    launcher.write_text(launcher.read_text() + "# changed\n")

    install(tmp_path, gimp_python=gimp_python.path)

    assert len(gimp_python.calls_of("-m", "venv")) == 1 and len(gimp_python.calls_of("-m", "pip")) == 2
    assert "# changed" not in launcher.read_text()
    assert not list((tmp_path / "handseg").glob("*.partial"))


def test_a_venv_of_another_python_version_is_made_anew(tmp_path, gimp_python):
    install(tmp_path, gimp_python=gimp_python.path)
    other = FakeGimpPython(tmp_path / "other-bin")
    other.configure(version="3.14")

    report = install(tmp_path, gimp_python=other.path)

    assert len(other.calls_of("-m", "venv")) == 1 and f"{other.path} (3.14" in report


def test_gimps_python_can_be_named_in_the_environment(tmp_path, gimp_python, monkeypatch):
    monkeypatch.setenv("HANDSEG_GIMP_PYTHON", str(gimp_python.path))

    install(tmp_path)

    assert gimp_python.calls_of("-m", "venv")


def test_gimps_interpreter_files_name_its_python(tmp_path, gimp_python, monkeypatch):
    interpreters = tmp_path / "lib" / "gimp" / "3.0" / "interpreters"
    interpreters.mkdir(parents=True)
    (interpreters / "pygimp.interp").write_text(
        f"python={gimp_python.path}\n/usr/bin/python3={gimp_python.path}\nlua=/usr/bin/luajit\n:Python:E::py::python3:\n")
    monkeypatch.setattr(installer, "INTERPRETER_FOLDERS", (str(interpreters),))

    install(tmp_path / "plug-ins")

    assert installer.python_candidates() == [str(gimp_python.path)]
    assert gimp_python.calls_of("-m", "venv")


def test_a_python_without_gimps_bindings_is_refused_before_anything_is_written(tmp_path, gimp_python):
    gimp_python.configure(gi=False)

    with pytest.raises(InstallError, match=r"cannot import GIMP 3's Python bindings \(ModuleNotFoundError: No module named 'gi'\)") as error:
        install(tmp_path / "plug-ins", gimp_python=gimp_python.path)

    assert isinstance(error.value, HandsegError) and "\n" not in str(error.value)
    assert not (tmp_path / "plug-ins" / "handseg").exists()


def test_without_any_gimp_python_the_error_says_what_to_install(tmp_path, gimp_python, monkeypatch):
    gimp_python.configure(gi=False)
    monkeypatch.setattr(installer, "FALLBACK_PYTHONS", (str(gimp_python.path), str(tmp_path / "missing")))

    with pytest.raises(InstallError) as error:
        install(tmp_path)

    message = str(error.value)
    assert message.startswith(f"found no Python with GIMP 3's bindings (tried {gimp_python.path}: ModuleNotFoundError")
    assert "apt install gimp python3-gi gir1.2-gimp-3.0" in message and "HANDSEG_GIMP_PYTHON" in message


def test_a_failing_pip_says_why_and_what_to_run(tmp_path, gimp_python):
    gimp_python.configure(pip_fails=True)

    with pytest.raises(InstallError) as error:
        install(tmp_path, gimp_python=gimp_python.path)

    message = str(error.value)
    assert "(ERROR: No matching distribution found for handseg==0.1.0)" in message and "\n" not in message
    assert f"run: {tmp_path / 'handseg' / 'venv' / 'bin' / 'python'} -m pip install" in message
    assert not (tmp_path / "handseg" / "handseg.py").exists()


def test_a_failing_venv_points_at_python3_venv(tmp_path, gimp_python):
    gimp_python.configure(venv_fails=True)

    with pytest.raises(InstallError, match=r"\(Error: ensurepip is not available\); on Debian/Ubuntu: apt install python3-venv"):
        install(tmp_path, gimp_python=gimp_python.path)


def test_a_folder_handseg_did_not_make_is_left_alone(tmp_path, gimp_python):
    theirs = tmp_path / "handseg" / "handseg.py"
    theirs.parent.mkdir()
    theirs.write_text("#!/usr/bin/env python3\n# someone else's handseg\n")

    with pytest.raises(InstallError, match="was not made by handseg; move it away"):
        install(tmp_path, gimp_python=gimp_python.path)

    assert theirs.read_text().endswith("someone else's handseg\n") and not gimp_python.calls


def test_a_plugins_dir_that_is_a_file_is_refused(tmp_path, gimp_python):
    (tmp_path / "plug-ins").write_text("")

    with pytest.raises(InstallError, match="is not a folder; give GIMP's plug-ins folder"):
        install(tmp_path / "plug-ins", gimp_python=gimp_python.path)


def test_a_venv_path_with_spaces_runs_with_gimps_python(tmp_path, gimp_python):
    plugins = tmp_path / "Application Support" / "plug-ins"

    install(plugins, gimp_python=gimp_python.path)

    assert first_line(plugins / "handseg" / "handseg.py") == f"#!{gimp_python.path}"


def test_the_default_folder_is_gimps_own(tmp_path, gimp_python, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    report = install(None, gimp_python=gimp_python.path)

    assert (tmp_path / "config" / "GIMP" / "3.0" / "plug-ins" / "handseg" / "handseg.py").is_file()
    assert str(tmp_path / "config" / "GIMP" / "3.0" / "plug-ins" / "handseg") in report


@pytest.mark.parametrize("platform, env, expected", [
    ("linux", {}, "home/.config/GIMP/3.0/plug-ins"),
    ("linux", {"XDG_CONFIG_HOME": "{tmp}/xdg"}, "xdg/GIMP/3.0/plug-ins"),
    ("linux", {"GIMP3_DIRECTORY": "gimp-settings"}, "home/gimp-settings/plug-ins"),
    ("linux", {"GIMP3_DIRECTORY": "{tmp}/elsewhere"}, "elsewhere/plug-ins"),
    ("darwin", {}, "home/Library/Application Support/GIMP/3.0/plug-ins"),
    ("win32", {"APPDATA": "{tmp}/AppData/Roaming"}, "AppData/Roaming/GIMP/3.0/plug-ins"),
])
def test_default_plugins_dir(tmp_path, monkeypatch, platform, env, expected):
    monkeypatch.setattr(sys, "platform", platform)
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp_path))

    assert default_plugins_dir() == tmp_path / expected


class FakeDistribution:
    def __init__(self, direct_url: dict | None):
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        return json.dumps(self.direct_url) if self.direct_url is not None and name == "direct_url.json" else None


@pytest.mark.parametrize("direct_url, expected", [
    ({"url": "file://{tmp}/src", "dir_info": {"editable": True}}, ["-e", "{tmp}/src"]),
    ({"url": "file://{tmp}/src", "dir_info": {}}, ["{tmp}/src"]),
    ({"url": "file://{tmp}/my%20wheels/handseg-0.1.0-py3-none-any.whl", "archive_info": {}},
     ["{tmp}/my wheels/handseg-0.1.0-py3-none-any.whl"]),
    ({"url": "file://{tmp}/gone", "dir_info": {}}, ["handseg==0.1.0"]),
    ({"url": "https://example.org/handseg-0.1.0.tar.gz", "archive_info": {}}, ["handseg==0.1.0"]),
    (None, ["handseg==0.1.0"]),
])
def test_pip_installs_the_same_handseg(tmp_path, monkeypatch, direct_url, expected):
    (tmp_path / "src").mkdir()
    (tmp_path / "my wheels").mkdir()
    (tmp_path / "my wheels" / "handseg-0.1.0-py3-none-any.whl").write_bytes(b"")
    if direct_url is not None:
        direct_url = {**direct_url, "url": direct_url["url"].format(tmp=tmp_path)}
    monkeypatch.setattr(installer.metadata, "distribution", lambda name: FakeDistribution(direct_url))
    monkeypatch.setattr(installer, "__version__", "0.1.0")

    assert package_source() == [part.format(tmp=tmp_path) for part in expected]


def test_the_cli_prints_the_report(tmp_path, gimp_python, monkeypatch):
    monkeypatch.setenv("HANDSEG_GIMP_PYTHON", str(gimp_python.path))

    result = CliRunner().invoke(handseg_cli.main, ["install", "gimp", "--plugins-dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"installed the handseg plug-in for GIMP 3 in {tmp_path / 'handseg' / 'handseg.py'}")


def test_the_cli_reports_a_failure_in_one_line(tmp_path, gimp_python, monkeypatch):
    gimp_python.configure(gi=False)
    monkeypatch.setenv("HANDSEG_GIMP_PYTHON", str(gimp_python.path))

    result = CliRunner().invoke(handseg_cli.main, ["install", "gimp", "--plugins-dir", str(tmp_path)])

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "cannot import GIMP 3's Python bindings" in result.stderr
