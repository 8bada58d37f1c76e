"""`python -m handseg_cli`: the same as the `handseg` command."""

from handseg_cli import main

main()
