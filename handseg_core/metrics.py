"""Mask metrics shared by `handseg eval` and training.

Protocol used everywhere in handseg: per-image IoU of the hand class, where an image whose
prediction and truth are both empty counts 1.0 and one where only one is empty counts 0.0,
averaged over the images of a set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MaskStats:
    """Accumulates per-image IoU and pixel counts over a set of images."""

    ious: list[float] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> float:
        """Add one image (boolean or 0/255 masks of equal shape); returns its IoU."""
        if predicted.shape != truth.shape:
            raise ValueError(f"mask shapes differ: predicted {predicted.shape}, truth {truth.shape}")
        p = predicted.astype(bool)
        t = truth.astype(bool)
        tp = int(np.count_nonzero(p & t))
        fp = int(np.count_nonzero(p & ~t))
        fn = int(np.count_nonzero(~p & t))
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += p.size - tp - fp - fn
        union = tp + fp + fn
        iou = 1.0 if union == 0 else tp / union
        self.ious.append(iou)
        return iou

    def summary(self) -> dict[str, float]:
        """Mean per-image IoU, pixel accuracy, precision and recall over everything added."""
        total = self.tp + self.fp + self.fn + self.tn
        return {
            "images": len(self.ious),
            "iou": float(np.mean(self.ious)) if self.ious else float("nan"),
            "accuracy": (self.tp + self.tn) / total if total else float("nan"),
            "precision": self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan"),
            "recall": self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan"),
        }


def hand_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU of the hand class for one image, with the empty-empty rule of the protocol."""
    return MaskStats().add(predicted, truth)
