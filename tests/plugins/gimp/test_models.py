from __future__ import annotations

import pytest

from handseg_core import registry
from handseg_plugins.gimp.models import DEFAULT_CHOICE, model_menu, model_to_load


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
def test_menu_values_name_the_model_to_load(choice, name):
    assert model_to_load(choice) == name
