from __future__ import annotations

import sys

import pytest

import handseg_core
from handseg_core import ModelError
from handseg_core import registry
from handseg_plugins.comfyui import models
from handseg_plugins.comfyui.nodes import HandsegLoadModel

from tiny_model import write_red_model

from ..spying import opened_files
from .conftest import make_folder_paths


def test_outside_comfyui_the_dropdown_is_the_registry(monkeypatch):
    monkeypatch.setitem(sys.modules, "folder_paths", None)  # import fails, as outside ComfyUI
    assert models.model_folders() == []
    choices = models.model_choices()
    assert sorted(choices) == sorted(registry.available_models())
    assert choices[0] == registry.default_model_name()
    assert HandsegLoadModel.INPUT_TYPES()["required"]["model"][0] == choices


def test_register_adds_models_handseg_for_onnx_files_and_keeps_extra_paths(tmp_path, monkeypatch):
    fp = make_folder_paths(tmp_path)
    fp.add_model_folder_path("handseg", "/from/extra_model_paths")
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    registered = models.register_models_folder()
    paths, extensions = fp.folder_names_and_paths["handseg"]
    assert registered == tmp_path / "models" / "handseg"
    assert paths == [str(registered), "/from/extra_model_paths"]
    assert ".onnx" in extensions


def test_dropdown_lists_onnx_files_of_the_models_folder(fake_comfyui):
    folder = fake_comfyui / "models" / "handseg"
    (folder / "sub").mkdir(parents=True)
    for path in (folder / "mine.onnx", folder / "sub" / "other.ONNX", folder / "unverified.onnx"):
        path.write_bytes(b"x")
    for path in (folder / "mine.onnx", folder / "sub" / "other.ONNX"):
        registry.sidecar_of(path).write_text(registry.sha256_of(b"x") + "\n")
    (folder / "notes.txt").write_text("not a model")
    choices = models.model_choices()
    assert set(choices[: len(registry.available_models())]) == set(registry.available_models())
    assert choices[-2:] == ["mine.onnx", "sub/other.ONNX"]
    assert "notes.txt" not in choices and "unverified.onnx" not in choices  # no checksum recorded
    assert models.resolve_model("sub/other.ONNX") == str(folder / "sub" / "other.ONNX")


def test_registry_names_resolve_to_themselves(fake_comfyui):
    name = registry.default_model_name()
    assert models.resolve_model(name) == name


def test_a_models_folder_file_loads_through_the_node(red_model_file):
    (model,) = HandsegLoadModel().load("tiny-red.onnx", "cpu")
    assert model.spec.path.resolve() == red_model_file.resolve()


ESCAPES = [
    "../../outside.onnx",
    "../handseg/../../outside.onnx",
    "sub/../../../outside.onnx",
    "..\\..\\outside.onnx",
    "C:\\outside.onnx",
    "C:outside.onnx",
    "\\\\server\\share\\outside.onnx",
]


@pytest.mark.parametrize("value", ESCAPES)
def test_path_traversal_is_refused(fake_comfyui, value):
    (fake_comfyui / "outside.onnx").write_bytes(b"not for you")  # where '../../' from models/handseg leads
    (fake_comfyui / "models" / "handseg" / "sub").mkdir(parents=True)
    with pytest.raises(ModelError, match="refused"):
        models.resolve_model(value)


def test_an_absolute_path_to_a_real_model_is_refused(fake_comfyui, red_model_file, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(handseg_core, "load_model", lambda *a, **k: calls.append(a))
    for value in (str(red_model_file), str(red_model_file.resolve()), red_model_file.as_posix()):
        with pytest.raises(ModelError, match="refused"):
            HandsegLoadModel().load(value, "cpu")
    assert calls == []


def test_unknown_names_are_refused_with_the_choices(fake_comfyui):
    with pytest.raises(ModelError, match="unknown model 'nope.onnx'.*available: " + registry.default_model_name()):
        models.resolve_model("nope.onnx")


def test_outside_comfyui_a_path_is_refused_even_when_the_file_exists(red_model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "folder_paths", None)
    with pytest.raises(ModelError):
        models.resolve_model("tiny-red.onnx")
    with pytest.raises(ModelError, match="refused"):
        models.resolve_model(str(red_model_file))




def test_the_listing_does_not_follow_symlinks_out_of_the_models_folder(fake_comfyui, tmp_path, monkeypatch):
    folder = fake_comfyui / "models" / "handseg"
    write_red_model(folder, "inside")
    elsewhere = tmp_path / "elsewhere"
    outside_model = write_red_model(elsewhere, "outside")  # verified, but not in the models folder
    (folder / "linked-file.onnx").symlink_to(outside_model)
    (folder / "linked-file.onnx.sha256").symlink_to(registry.sidecar_of(outside_model))
    (folder / "linked-folder").symlink_to(elsewhere, target_is_directory=True)
    (folder / "passwd.onnx").symlink_to("/etc/passwd")
    (folder / "passwd.onnx.sha256").write_text("ab" * 32 + "\n")
    (folder / "inner").mkdir()
    (folder / "inner" / "alias.onnx").symlink_to(folder / "inside.onnx")  # a link that stays inside is fine
    (folder / "inner" / "alias.onnx.sha256").symlink_to(registry.sidecar_of(folder / "inside.onnx"))
    opened = opened_files(monkeypatch)

    files = models.model_files()

    assert sorted(files) == ["inner/alias.onnx", "inside.onnx"]
    assert not [name for name in opened if not registry.is_inside(name, folder)]
    for value in ("linked-file.onnx", "linked-folder/outside.onnx", "passwd.onnx"):
        with pytest.raises(ModelError, match="unknown model"):
            models.resolve_model(value)
    assert [name for name in opened if "passwd" in name or "elsewhere" in name] == []


@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/passwd", "../../../../../../etc/passwd",
                                   "sub/../../../etc/passwd", "..", "", "/", "\\etc\\passwd"])
def test_traversal_values_from_a_workflow_open_nothing(fake_comfyui, monkeypatch, value):
    (fake_comfyui / "models" / "handseg" / "sub").mkdir(parents=True)
    opened = opened_files(monkeypatch)
    loads = []
    monkeypatch.setattr(handseg_core, "load_model", lambda *a, **k: loads.append(a))
    with pytest.raises(ModelError):
        HandsegLoadModel().load(value, "cpu")
    assert loads == []
    assert [name for name in opened if "passwd" in name] == []


def test_a_file_swapped_for_a_symlink_after_listing_is_refused(fake_comfyui, tmp_path, monkeypatch):
    folder = fake_comfyui / "models" / "handseg"
    inside = write_red_model(folder, "swapped")
    listed = models.model_files()
    outside = write_red_model(tmp_path / "elsewhere", "swapped")
    inside.unlink()
    inside.symlink_to(outside)
    monkeypatch.setattr(models, "model_files", lambda: listed)
    with pytest.raises(ModelError, match="refused"):
        models.resolve_model("swapped.onnx")
