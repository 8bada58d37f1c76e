"""One module per group of commands, in the order `handseg --help` lists them."""

from __future__ import annotations

from handseg_cli.commands.batch import cutout, mask
from handseg_cli.commands.evaluate import evaluate
from handseg_cli.commands.export import export, quantize
from handseg_cli.commands.models import models
from handseg_cli.commands.plugins import app, install
from handseg_cli.commands.train import train
from handseg_cli.commands.video import video

COMMANDS = (mask, cutout, video, evaluate, models, train, export, quantize, install, app)
