"""One distillation run as the CLI performs it: split, fit (regularized and λ = 0 baseline),
score on the held-out test rows, write the run directory."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from jacdistill import formula, storage, teacher
from jacdistill.data import Dataset, split_indices
from jacdistill.estimator import Distiller, Progress
from jacdistill.metrics import r2
from jacdistill.options import JacdistillError

@dataclass
class Fitted:
    estimator: Distiller
    metrics: dict


def fit_and_score(data: Dataset, params: dict, progress: Progress | None = None,
                  workdir: Path | None = None, split_seed: int | None = None) -> Fitted:
    """Fit ``Distiller(**params)`` on the train/val split and score it on the test split; the
    split is drawn with ``split_seed`` (default: the model's seed)."""
    split = split_indices(len(data.y), params.get("seed", 0) if split_seed is None else split_seed)
    X = pd.DataFrame(data.X, columns=data.feature_names)
    est = Distiller(**params).fit(X.iloc[split.train], data.y[split.train], X.iloc[split.val],
                                  data.y[split.val], progress=progress, workdir=workdir)
    scores = {}
    for part, rows in (("val", split.val), ("test", split.test)):
        teacher_pred, student_pred = est.predict_teacher(X.iloc[rows]), est.predict(X.iloc[rows])
        scores[f"teacher_r2_{part}"] = r2(data.y[rows], teacher_pred)
        scores[f"student_r2_{part}"] = r2(data.y[rows], student_pred)
        scores[f"fidelity_r2_{part}"] = r2(teacher_pred, student_pred)
    metrics = {
        "dataset": data.name, "regularizer": est.regularizer, "lam": float(est.lam_),
        "tuner": est.tuner if est.lam == "auto" else None,
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
    if est.lam == "auto":
        metrics["tuning"] = {"trials": [t.record() for t in est.search_.trials],
                             "compute": est.search_.compute()}
    return Fitted(est, metrics)


def run(data: Dataset, params: dict, baseline: bool = True, progress: Progress | None = None,
        workdir: Path | None = None) -> tuple[Fitted, Fitted | None]:
    """The regularized fit and, unless ``baseline`` is False, the same fit with λ = 0 (which is
    the regularized fit itself when λ is already 0)."""
    main = fit_and_score(data, params, progress, workdir)
    if not baseline:
        base = None
    elif params["lam"] == 0:
        base = main
    else:
        base = fit_and_score(data, {**params, "regularizer": "none", "lam": 0.0}, progress)
    main.metrics["baseline"] = dict(base.metrics) if base else None
    return main, base


def default_run_dir(data: Dataset, params: dict, command: str = "run", root: str | Path = "runs") -> Path:
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    kind = "" if command == "run" else f"-{command}"
    base = Path(root) / f"{stamp}-{data.name}-{params['regularizer']}-{params['student']}{kind}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


FINISHED_MARKERS = ("metrics.json", "tuning.json")


def prepare_run_dir(path: str | Path, config: dict) -> Path:
    """Create the run directory and write ``config.json``; refuse to overwrite a finished run."""
    path = Path(path)
    if any((path / name).exists() for name in FINISHED_MARKERS):
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


def tune(data: Dataset, params: dict, progress: Progress | None = None,
         workdir: Path | None = None) -> dict:
    """Run the tuner on the train/val split; report every trial (with its teacher's test R², for
    the reader: the tuner never sees the test rows), the compute spent and the chosen fit."""
    fitted = fit_and_score(data, {**params, "lam": "auto"}, progress, workdir)
    est, metrics = fitted.estimator, fitted.metrics
    test = split_indices(len(data.y), params.get("seed", 0)).test
    X_test = pd.DataFrame(data.X[test], columns=data.feature_names)
    standardized = est.x_scaler_.transform(X_test.to_numpy())
    trials = []
    for trial in est.search_.trials:
        pred = est.y_scaler_.inverse(teacher.predict(trial.model, standardized)[:, None])[:, 0]
        trials.append({**trial.record(), "teacher_r2_test": r2(data.y[test], pred)})
    return {"tuner": est.tuner, "dataset": data.name, "regularizer": est.regularizer,
            "student": est.student, "seed": est.seed, "lam": metrics["lam"], "trials": trials,
            "compute": est.search_.compute(), **{k: metrics[k] for k in (
                "teacher_r2_test", "student_r2_test", "fidelity_r2_test", "complexity", "formula")}}


def write_tuning(path: Path, report: dict) -> None:
    """``tuning.png`` (R² against λ), then ``tuning.json`` (last: it marks a finished tuning)."""
    plt = storage.pyplot()
    trials = sorted((t for t in report["trials"] if "schedule" not in t), key=lambda t: t["lam"])
    figure, axes = plt.subplots(figsize=(6, 4))
    for key, label in (("teacher_r2_val", "teacher, validation"), ("teacher_r2_test", "teacher, test"),
                       ("student_r2_val", "student, validation")):
        points = [(t["lam"], t[key]) for t in trials if t[key] is not None]
        if points:
            axes.plot(*zip(*points), marker="o", label=label)
    axes.axvline(report["lam"], color="grey", linestyle="--", label=f"chosen λ = {report['lam']:.3g}")
    smallest = min([t["lam"] for t in trials if t["lam"] > 0] or [1e-4])
    axes.set_xscale("symlog", linthresh=smallest)
    axes.set_xlim(left=-smallest / 2)
    axes.set_xlabel("λ")
    axes.set_ylabel("R²")
    axes.set_title(f"{report['dataset']}: {report['tuner']} tuner, {report['student']} student")
    axes.legend()
    storage.write_figure(path / "tuning.png", figure)
    storage.write_json(path / "tuning.json", report)
