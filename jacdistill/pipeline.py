"""One distillation run as the CLI performs it: split, fit (regularized and λ = 0 baseline),
score on the held-out test rows, write the run directory."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jacdistill import formula, storage, teacher
from jacdistill.contracts import JacdistillError
from jacdistill.data import Dataset, split_indices
from jacdistill.estimator import Distiller, Progress

def r2(truth: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination; NaN when a prediction is not finite (a formula can blow up)."""
    if not np.all(np.isfinite(pred)):
        return float("nan")
    return float(1.0 - np.sum((truth - pred) ** 2) / np.sum((truth - truth.mean()) ** 2))


@dataclass
class Fitted:
    estimator: Distiller
    metrics: dict


def fit_and_score(data: Dataset, params: dict, progress: Progress | None = None) -> Fitted:
    """Fit ``Distiller(**params)`` on the train/val split and score it on the test split."""
    split = split_indices(len(data.y), params.get("seed", 0))
    X = pd.DataFrame(data.X, columns=data.feature_names)
    est = Distiller(**params).fit(X.iloc[split.train], data.y[split.train],
                                  X.iloc[split.val], data.y[split.val], progress=progress)
    scores = {}
    for part, rows in (("val", split.val), ("test", split.test)):
        teacher_pred, student_pred = est.predict_teacher(X.iloc[rows]), est.predict(X.iloc[rows])
        scores[f"teacher_r2_{part}"] = r2(data.y[rows], teacher_pred)
        scores[f"student_r2_{part}"] = r2(data.y[rows], student_pred)
        scores[f"fidelity_r2_{part}"] = r2(teacher_pred, student_pred)
    metrics = {
        "dataset": data.name, "regularizer": est.regularizer, "lam": float(est.lam),
        "student": est.student, "seed": est.seed,
        "teacher_r2_test": scores["teacher_r2_test"], "student_r2_test": scores["student_r2_test"],
        "fidelity_r2_test": scores["fidelity_r2_test"], "complexity": int(est.complexity_),
        "formula": formula.as_text(est.formula_, data.target_name, digits=6),
        "teacher_r2_val": scores["teacher_r2_val"], "student_r2_val": scores["student_r2_val"],
        "fidelity_r2_val": scores["fidelity_r2_val"],
        "teacher_epochs": est.training_.epochs_run, "teacher_best_epoch": est.training_.best_epoch,
        "rows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "timings": {**est.timings_, "total": sum(est.timings_.values())},
    }
    return Fitted(est, metrics)


def run(data: Dataset, params: dict, baseline: bool = True,
        progress: Progress | None = None) -> tuple[Fitted, Fitted | None]:
    """The regularized fit and, unless ``baseline`` is False, the same fit with λ = 0 (which is
    the regularized fit itself when λ is already 0)."""
    main = fit_and_score(data, params, progress)
    if not baseline:
        base = None
    elif params["lam"] == 0:
        base = main
    else:
        base = fit_and_score(data, {**params, "regularizer": "none", "lam": 0.0}, progress)
    main.metrics["baseline"] = dict(base.metrics) if base else None
    return main, base


def default_run_dir(data: Dataset, params: dict, root: str | Path = "runs") -> Path:
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    base = Path(root) / f"{stamp}-{data.name}-{params['regularizer']}-{params['student']}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_run_dir(path: str | Path, config: dict) -> Path:
    """Create the run directory and write ``config.json``; refuse to overwrite a finished run."""
    path = Path(path)
    if (path / "metrics.json").exists():
        raise JacdistillError(f"{path} already holds a finished run; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JacdistillError(f"cannot create run directory {path}: {exc.strerror}") from None
    storage.write_json(path / "config.json", config)
    return path


def write_model_files(path: Path, fitted: Fitted, target: str) -> None:
    est = fitted.estimator
    path.mkdir(exist_ok=True)
    storage.write_text(path / "formula.txt", formula.as_text(est.formula_, target) + "\n")
    storage.write_text(path / "formula.tex", formula.as_latex(est.formula_, target) + "\n")
    storage.write_torch(path / "teacher.pt", teacher.checkpoint(
        est.teacher_, feature_names=est.feature_names(), target=target,
        x_mean=est.x_scaler_.mean.tolist(), x_scale=est.x_scaler_.scale.tolist(),
        y_mean=float(est.y_scaler_.mean[0]), y_scale=float(est.y_scaler_.scale[0])))


def write_run(path: Path, data: Dataset, main: Fitted, base: Fitted | None) -> None:
    """Model files first, ``metrics.json`` last: its presence marks a finished run."""
    write_model_files(path, main, data.target_name)
    if base:
        write_model_files(path / "baseline", base, data.target_name)
    storage.write_json(path / "metrics.json", main.metrics)
