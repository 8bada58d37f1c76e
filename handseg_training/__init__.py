"""Training, evaluation and export of handseg models (needs the `train` extra: torch, smp)."""
