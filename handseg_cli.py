"""The `handseg` command line (placeholder until the CLI lands)."""

import click

from handseg_core._version import __version__


@click.group()
@click.version_option(__version__, prog_name="handseg")
def main():
    """Cut hands out of photos."""
