"""The models the plug-in's Model argument offers: handseg's registry, read when GIMP queries the plug-in.

GIMP keeps the menu it got at the last query; it asks again when the plug-in file changes, which
`handseg install gimp` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from handseg_core import HandsegError
from handseg_core import registry

DEFAULT_CHOICE = "default"


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the Model menu; `name` is what the procedure receives."""

    name: str
    label: str
    help: str = ""


def model_menu() -> tuple[list[ModelChoice], str]:
    """(entries, default name): every registered model, the packaged default selected.

    When the registry cannot be read or is empty, one entry DEFAULT_CHOICE stands for the
    default model, so that the plug-in still registers and reports the problem when run.
    """
    try:
        specs, default = registry.models_for_menu()
    except HandsegError as exc:
        return [ModelChoice(DEFAULT_CHOICE, "Default model", str(exc))], DEFAULT_CHOICE
    if not specs:
        return [ModelChoice(DEFAULT_CHOICE, "Default model")], DEFAULT_CHOICE
    return [ModelChoice(spec.name, spec.name, spec.description) for spec in specs], default or specs[0].name


def model_to_load(choice: str) -> str | None:
    """The name to give `handseg_core.load_model` for a menu value (None: the default model)."""
    return None if choice in ("", DEFAULT_CHOICE) else choice
