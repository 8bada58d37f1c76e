"""`handseg install comfyui|gimp` and `handseg app`: the plug-ins and the web app."""

from __future__ import annotations

from pathlib import Path

import click

from handseg_cli.common import Failure, engine_errors, first_line, import_plugin, plugin_call


@click.group()
def install() -> None:
    """Install the handseg plug-in into another program."""


@install.command("comfyui")
@click.argument("comfyui_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def install_comfyui(comfyui_dir: Path) -> None:
    """Install the handseg nodes into the ComfyUI at COMFYUI_DIR.

    Writes custom_nodes/handseg/, a shim that loads the nodes from this handseg, and
    models/handseg/. A clone of the handseg repository already in custom_nodes/ is the pack
    itself: it is kept as it is and no shim is written."""
    installed = plugin_call("comfyui", "the ComfyUI plug-in", lambda module: module.install(comfyui_dir))
    click.echo(f"the handseg nodes are in {installed}; restart ComfyUI to load them")


@install.command("gimp")
@click.option("--plugins-dir", type=click.Path(file_okay=False, path_type=Path),
              help="GIMP's plug-ins folder  [default: found from GIMP's settings]")
def install_gimp(plugins_dir: Path | None) -> None:
    """Install the handseg filter into GIMP."""
    click.echo(plugin_call("gimp", "the GIMP plug-in", lambda module: module.install(plugins_dir)))


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True, help="Port to serve on.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
def app(port: int, no_browser: bool) -> None:
    """Start the handseg web app on this computer."""
    module = import_plugin("webapp", "the web app")
    with engine_errors():
        try:
            code = module.launch(port, not no_browser)
        except OSError as exc:
            raise Failure(f"cannot serve on port {port} ({exc.strerror or first_line(exc)})") from None
    raise click.exceptions.Exit(code or 0)
