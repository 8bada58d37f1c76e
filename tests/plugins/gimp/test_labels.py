"""The menu labels, read from the plug-in's source (it imports GIMP's gi bindings, absent here)."""

from __future__ import annotations

import ast
from pathlib import Path

import handseg_plugins.gimp

PLUGIN = Path(handseg_plugins.gimp.__file__).with_name("plugin.py")


def labels() -> list[str]:
    tree = ast.parse(PLUGIN.read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Command"]
    return [call.args[1].value for call in calls]


def test_every_entry_opens_a_dialog_and_says_so_with_an_ellipsis():
    found = labels()
    assert len(found) == 3
    for label in found:
        assert label.endswith("...") and label.count("_") == 1, label  # GIMP's own convention, one mnemonic

