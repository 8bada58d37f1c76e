"""The repository itself as a ComfyUI pack: cloned into custom_nodes/ (or the Registry's zip
unpacked there), loaded by ComfyUI's loader, as ComfyUI 0.17's nodes.load_custom_node does it:
the folder's __init__.py is executed by file location under a module name made from its path,
then WEB_DIRECTORY, NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS are read from it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from handseg_plugins.comfyui.install import find_clone, install, is_clone

from .conftest import FOLDER_PATHS_FILE

REPO = Path(__file__).resolve().parents[3]
# What a clone holds that the pack needs (a clone has more; these are enough to load it).
PACK_FILES = ["__init__.py", "requirements.txt", "pyproject.toml", "handseg_core", "handseg_plugins", "example_workflows"]

LOADER = '''
import importlib.util, json, os, sys
module_path = sys.argv[1]
sys_module_name = module_path.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(sys_module_name, os.path.join(module_path, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[sys_module_name] = module
spec.loader.exec_module(module)
loaded_early = sorted(name for name in sys.modules if name.startswith("handseg"))
web = getattr(module, "WEB_DIRECTORY", None)
mappings = module.NODE_CLASS_MAPPINGS if hasattr(module, "NODE_CLASS_MAPPINGS") else None
names = module.NODE_DISPLAY_NAME_MAPPINGS if hasattr(module, "NODE_DISPLAY_NAME_MAPPINGS") else None
print(json.dumps({
    "loaded_before_asked": loaded_early,
    "web": web,
    "nodes": {name: [cls.__name__, sys.modules[cls.__module__].__file__] for name, cls in (mappings or {}).items()},
    "names": names,
    "core": sys.modules["handseg_core"].__file__,
}))
'''


def clone_into(custom_nodes: Path, name: str = "handseg") -> Path:
    """A copy of the repository's pack files, as `git clone` would lay them out."""
    target = custom_nodes / name
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for entry in PACK_FILES:
        source = REPO / entry
        if source.is_dir():
            shutil.copytree(source, target / entry, ignore=ignore)
        else:
            shutil.copyfile(source, target / entry)
    return target


@pytest.fixture
def comfyui(tmp_path) -> Path:
    root = tmp_path / "ComfyUI"
    (root / "custom_nodes").mkdir(parents=True)
    (root / "main.py").write_text("")
    (root / "folder_paths.py").write_text(FOLDER_PATHS_FILE.read_text())
    return root


def load_like_comfyui(root: Path, pack: Path, *, cwd: Path | None = None) -> dict:
    # ComfyUI runs from its own folder, which is how folder_paths is importable; nothing puts
    # the pack's folder on sys.path, and PYTHONPATH (the worktree in tests) is left out.
    env = {"FAKE_COMFYUI_DIR": str(root), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(root)!r})\n" + LOADER,
                             str(pack)], capture_output=True, text=True, timeout=180, cwd=cwd or root, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_a_clone_in_custom_nodes_registers_every_node(comfyui):
    pack = clone_into(comfyui / "custom_nodes")
    loaded = load_like_comfyui(comfyui, pack)
    assert {name: cls for name, (cls, _) in loaded["nodes"].items()} == \
        {name: cls.__name__ for name, cls in NODE_CLASS_MAPPINGS.items()}
    assert loaded["names"] == NODE_DISPLAY_NAME_MAPPINGS
    assert loaded["web"] is None


def test_the_clone_runs_its_own_code_before_any_installed_handseg(comfyui):
    # the test environment has handseg installed (editable, elsewhere): the clone still wins
    pack = clone_into(comfyui / "custom_nodes", name="ComfyUI-handseg")
    loaded = load_like_comfyui(comfyui, pack)
    assert Path(loaded["core"]).is_relative_to(pack)
    assert all(Path(file).is_relative_to(pack) for _, file in loaded["nodes"].values())


def test_the_pack_loads_nothing_until_comfyui_asks_for_the_nodes(comfyui):
    pack = clone_into(comfyui / "custom_nodes")
    assert load_like_comfyui(comfyui, pack)["loaded_before_asked"] == []


def test_the_root_init_is_inert_when_imported_for_other_reasons():
    # pytest imports a rootdir __init__.py while collecting, and reads setup_module from it
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('__init__', {str(REPO / '__init__.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert not hasattr(module, 'setup_module') and not hasattr(module, 'setUpModule')\n"
        "assert not [n for n in sys.modules if n.startswith('handseg')], sorted(sys.modules)\n"
        "print('inert')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0 and "inert" in result.stdout, result.stderr


def test_a_missing_dependency_is_reported_with_the_command_that_fixes_it(comfyui):
    pack = clone_into(comfyui / "custom_nodes")
    code = (
        "import sys; sys.modules['onnxruntime'] = None; sys.modules['cv2'] = None\n"
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('pack', {str(pack / '__init__.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "module.NODE_CLASS_MAPPINGS\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode != 0
    assert "pip install -r" in result.stderr and str(pack / "requirements.txt") in result.stderr


def test_requirements_txt_is_the_projects_dependencies():
    listed = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(listed) == sorted(declared)


def test_the_registry_reads_a_version_a_repository_and_an_icon():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy = config["tool"]["comfy"]
    version_file = REPO / comfy["version"]["path"]
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+"', version_file.read_text(), re.M)
    assert config["project"]["urls"]["Repository"].startswith("https://")
    assert comfy["Icon"].endswith(".png") and (REPO / "docs" / "plugins" / comfy["Icon"].rsplit("/", 1)[1]).is_file()


def test_handseg_install_accepts_a_clone_it_did_not_make(comfyui):
    pack = clone_into(comfyui / "custom_nodes")
    before = sorted(p.relative_to(pack) for p in pack.rglob("*"))
    assert is_clone(pack) and install(comfyui) == pack
    assert sorted(p.relative_to(pack) for p in pack.rglob("*")) == before  # no shim written over it
    assert (comfyui / "models" / "handseg").is_dir()


def test_handseg_install_finds_a_clone_under_another_name(comfyui):
    pack = clone_into(comfyui / "custom_nodes", name="handseg-main")
    assert find_clone(comfyui / "custom_nodes") == pack
    assert install(comfyui) == pack
    assert not (comfyui / "custom_nodes" / "handseg").exists()  # a shim would list every node twice
