"""The `handseg` command line: masks and cut-outs for batches of images, evaluation, training,
export, the model list and the plug-in installers.

`cli.py` holds the command group; each group of commands is a module of `commands/`. The engine
(OpenCV, ONNX Runtime) and torch are imported inside the commands, so that `handseg --help` and
`handseg --version` answer at once. Only this package turns exceptions into messages and exit
codes.
"""

from __future__ import annotations

from handseg_cli.cli import main

__all__ = ["main"]
