"""Scores shared by the pipeline, the tuners and the reports."""

from __future__ import annotations

import math

import numpy as np


def r2(truth: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination; NaN when a prediction is not finite (a formula can blow up)
    or the truth is constant (R² is undefined)."""
    spread = np.sum((truth - truth.mean()) ** 2)
    if not np.all(np.isfinite(pred)) or spread == 0:
        return float("nan")
    return float(1.0 - np.sum((truth - pred) ** 2) / spread)


def rank_score(r2_value: float | None) -> float:
    """Validation R² for ranking candidates; a missing or NaN R² (a formula that blows up) ranks last."""
    return -math.inf if r2_value is None or math.isnan(r2_value) else r2_value
