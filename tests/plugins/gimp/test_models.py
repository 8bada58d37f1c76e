from __future__ import annotations

import os

import pytest

from handseg_core import ModelError, registry
from tiny_model import write_red_model
from handseg_plugins.gimp.models import DEFAULT_CHOICE, model_menu, model_to_load

from ..spying import opened_files


def test_the_menu_offers_every_registered_model_with_the_default_chosen(red_model, monkeypatch):
    monkeypatch.setenv("HANDSEG_MODELS", str(red_model.parent))

    entries, default = model_menu()

    assert [entry.name for entry in entries] == list(registry.available_models())
    assert "tiny-red" in [entry.name for entry in entries]
    assert default == registry.default_model_name()
    assert [entry.help for entry in entries] == [spec.description for spec in registry.available_models().values()]


def test_a_broken_registry_still_gives_a_menu_and_keeps_the_reason(tmp_path, monkeypatch):
    (tmp_path / "index.json").write_text("{not json")
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))

    entries, default = model_menu()

    assert default == DEFAULT_CHOICE and [e.name for e in entries] == [DEFAULT_CHOICE]
    assert "not a valid model index" in entries[0].help


def test_an_empty_registry_offers_the_default(monkeypatch):
    monkeypatch.setattr(registry, "available_models", lambda: {})

    entries, default = model_menu()

    assert default == DEFAULT_CHOICE and [e.name for e in entries] == [DEFAULT_CHOICE]


@pytest.mark.parametrize("choice, name", [("tiny-red", "tiny-red"), (DEFAULT_CHOICE, None), ("", None)])
def test_menu_values_name_the_model_to_load(choice, name, red_model, monkeypatch):
    monkeypatch.setenv("HANDSEG_MODELS", str(red_model.parent))
    assert model_to_load(choice) == name




def test_only_names_the_menu_offers_are_taken(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    listed = write_red_model(folder, "tiny-red")
    valid_elsewhere = write_red_model(tmp_path / "outside", "valid")  # verified, but in no model folder
    (folder / "linked.onnx").symlink_to("/etc/passwd")
    monkeypatch.setenv("HANDSEG_MODELS", str(folder))
    relative = os.path.relpath(valid_elsewhere, folder)  # '../outside/valid.onnx' from the folder
    opened = opened_files(monkeypatch)
    for value in ("../../etc/passwd", "/etc/passwd", str(valid_elsewhere), relative, str(listed), "linked.onnx",
                  "linked", "tiny-red.onnx", "handseg-lite2-int8/../x"):
        with pytest.raises(ModelError, match="refused") as caught:
            model_to_load(value)
        assert "\n" not in str(caught.value) and "Model menu" in str(caught.value)
    assert [name for name in opened if "passwd" in name or "outside" in name] == []
    assert model_to_load("tiny-red") == "tiny-red"
