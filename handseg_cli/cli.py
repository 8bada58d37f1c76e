"""The `handseg` command group; the commands themselves are in `handseg_cli/commands/`."""

from __future__ import annotations

import click

from handseg_cli.commands import COMMANDS
from handseg_cli.common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="handseg", prog_name="handseg", message="%(prog)s %(version)s")
def main() -> None:
    """Cut hands out of photos: masks, cut-outs, evaluation, training and export.

    Try `handseg mask photos/ -o masks/` or `handseg cutout "*.jpg" -o hands/`.
    """


for command in COMMANDS:
    main.add_command(command)
