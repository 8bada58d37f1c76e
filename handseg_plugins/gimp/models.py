"""The models the plug-in's Model argument offers: handseg's registry, read when GIMP queries the plug-in.

GIMP keeps the menu it got at the last query; it asks again when the plug-in file changes, which
`handseg install gimp` does. The registry lists only models whose checksum is recorded, and a
value the menu does not offer (a path from a PDB call) is refused before anything is opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from handseg_core import HandsegError, ModelError
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
    """The name to give `handseg_core.load_model` for a menu value (None: the default model).

    A PDB call or a saved setting can pass any string; only the names the menu offers are
    taken, never a path, so no file outside the model folders is opened.

    Raises:
        ModelError: `choice` is not one of the menu's names.
    """
    if choice in ("", DEFAULT_CHOICE):
        return None
    entries, _ = model_menu()
    offered = [entry.name for entry in entries if entry.name != DEFAULT_CHOICE]
    if not isinstance(choice, str) or choice not in offered:
        raise ModelError(f"model {choice!r} refused: choose one the Model menu offers ({', '.join(offered) or 'none'})")
    return registry.find_listed(choice).name
