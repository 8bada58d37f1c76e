"""`handseg models`: the models handseg can load by name."""

from __future__ import annotations

import json

import click

from handseg_cli.common import engine_errors


def model_rows() -> list[dict]:
    from handseg_core import registry
    from handseg_core.errors import ModelError

    try:
        default = registry.default_model_name()
    except ModelError:
        default = ""
    rows = []
    for name, spec in registry.available_models().items():
        path = spec.path
        rows.append({
            "name": name,
            "default": name == default,
            "architecture": spec.architecture,
            "encoder": spec.encoder,
            "input_size": spec.input_size,
            "path": str(path),
            "size_bytes": path.stat().st_size if path.is_file() else None,
            "sha256": registry.expected_checksum(spec),
            "metrics": spec.metrics,
            "description": spec.description,
            "training_data": spec.training_data,
            "terms": spec.terms,
        })
    return rows


def metric_text(metrics: dict) -> str:
    """{"set": {"iou": 0.9, ...}} or {"set": 0.9} -> "set IoU 0.900"."""
    parts = []
    for name, value in metrics.items():
        iou = value.get("iou") if isinstance(value, dict) else value
        if isinstance(iou, (int, float)):
            parts.append(f"{name} IoU {iou:.3f}")
    return ", ".join(parts) or "-"


def models_table(rows: list[dict]) -> str:
    header = ("", "name", "encoder", "input", "size", "sha256", "metrics")
    lines = [header]
    for row in rows:
        size = "missing" if row["size_bytes"] is None else f"{row['size_bytes'] / 1e6:.1f} MB"
        lines.append(("*" if row["default"] else "", row["name"], row["encoder"] or "-", str(row["input_size"]),
                      size, row["sha256"][:12] or "-", metric_text(row["metrics"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1] for line in lines]
    return "\n".join(t.rstrip() for t in text) + "\n* default model (choose another with HANDSEG_DEFAULT_MODEL); more folders of models: HANDSEG_MODELS"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models(as_json: bool) -> None:
    """List the models handseg can load by name (packaged ones, then HANDSEG_MODELS folders)."""
    with engine_errors():
        rows = model_rows()
    click.echo(json.dumps(rows, indent=2) if as_json else models_table(rows))
