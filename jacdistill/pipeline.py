"""The run directory of ``jacdistill run`` and ``jacdistill tune``: its name, ``config.json``,
model files, ``metrics.json`` / ``tuning.json`` (written last: they mark a finished run)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from jacdistill import formula, storage, teacher
from jacdistill.data import Dataset
from jacdistill.evaluation import Fitted
from jacdistill.options import JacdistillError


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
    storage.write_torch(
        path / "teacher.pt",
        teacher.checkpoint(
            est.teacher_,
            feature_names=est.feature_names(),
            target=target,
            x_mean=est.x_scaler_.mean.tolist(),
            x_scale=est.x_scaler_.scale.tolist(),
            y_mean=float(est.y_scaler_.mean[0]),
            y_scale=float(est.y_scaler_.scale[0]),
        ),
    )


def write_run(path: Path, data: Dataset, main: Fitted, base: Fitted | None) -> None:
    """Model files first, ``metrics.json`` last: its presence marks a finished run."""
    write_model_files(path, main, data.target_name)
    if base:
        write_model_files(path / "baseline", base, data.target_name)
    storage.write_json(path / "metrics.json", main.metrics)


def write_tuning(path: Path, report: dict) -> None:
    """``tuning.png`` (R² against λ), then ``tuning.json`` (last: it marks a finished tuning)."""
    plt = storage.pyplot()
    trials = sorted((t for t in report["trials"] if "schedule" not in t), key=lambda t: t["lam"])
    figure, axes = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("teacher_r2_val", "teacher, validation"),
        ("teacher_r2_test", "teacher, test"),
        ("student_r2_val", "student, validation"),
    ):
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
