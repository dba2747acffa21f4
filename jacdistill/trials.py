"""What a sweep's trials are, shared by the sweep that writes them and the report that reads them.

A trial is one (dataset, student, arm, seed): a JSON object with at least ``REQUIRED_KEYS``, in its
own file under ``SWEEP_DIR/trials/``. What each arm computes is described in :mod:`jacdistill.sweep`.
"""

from __future__ import annotations

from pathlib import Path

ARMS = ("direct", "baseline", "regularized", "augmented", "control")
TREATMENTS = ("regularized", "augmented")  # the arms regularization is judged by
REFERENCES = ("baseline", "direct", "control")  # what each treatment is compared with
REQUIRED_KEYS = ("dataset", "student", "arm", "seed")
DEFAULT_STUDENTS = ("operon", "gplearn", "tree")  # a sweep's, unless its settings say otherwise
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def trial_path(sweep_dir: Path, dataset: str, student: str, arm: str, seed: int) -> Path:
    return Path(sweep_dir) / "trials" / f"{dataset}__{student}__{arm}__seed{seed}.json"
