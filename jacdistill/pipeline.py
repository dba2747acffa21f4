"""The run directory of ``jacdistill run`` and ``jacdistill tune``: its name, ``config.json``,
``status.json`` (running, finished or interrupted; see :func:`run_status`), model files,
``metrics.json`` / ``tuning.json`` (the results: they mark a finished run)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from pathlib import Path

import pandas as pd

from jacdistill import formula, run_plots, storage, teacher
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
    """Create the run directory, write ``config.json`` and mark it running (with this process's
    pid); refuse to overwrite a finished run."""
    path = Path(path)
    if any((path / name).exists() for name in FINISHED_MARKERS):
        raise JacdistillError(f"{path} already holds a finished run; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JacdistillError(f"cannot create run directory {path}: {exc.strerror}") from None
    storage.write_json(path / "config.json", config)
    status = {"state": "running", "pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
    storage.write_json(path / STATUS, status)
    return path


STATUS = "status.json"


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _mark(path: Path, state: str) -> None:
    """Set ``status.json``'s state and when it was reached, keeping the pid and start time (if the
    directory was made by :func:`prepare_run_dir`)."""
    earlier = storage.read_json(path / STATUS) if (path / STATUS).exists() else {}
    storage.write_json(path / STATUS, {**earlier, "state": state, state: _now()})


def run_status(path: str | Path) -> str | None:
    """``running``, ``finished``, ``interrupted`` (by Ctrl-C) or ``abandoned`` (it says running but
    its process is gone: killed, or its machine stopped); None where there is no ``status.json``
    (not a run directory, or one from before status files). A run started on another host counts
    as running: its process cannot be checked from here."""
    try:
        status = storage.read_json(Path(path) / STATUS)
    except FileNotFoundError:
        return None
    if status["state"] != "running" or status["host"] != socket.gethostname():
        return status["state"]
    try:
        os.kill(status["pid"], 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return "abandoned"
    except PermissionError:  # it exists, run by another user
        pass
    return "running"


@contextlib.contextmanager
def marking_interrupts(path: Path):
    """Mark the run directory ``interrupted`` when Ctrl-C stops the work inside."""
    try:
        yield
    except KeyboardInterrupt:
        _mark(path, "interrupted")
        raise


def write_model_files(path: Path, fitted: Fitted, target: str) -> None:
    est = fitted.estimator
    path.mkdir(exist_ok=True)
    storage.write_text(path / "formula.txt", formula.file_text(est.formula_, target))
    storage.write_text(path / "formula.tex", formula.as_latex(est.formula_, target) + "\n")
    storage.write_text(path / "front.csv", est.front_.to_csv(index=False))
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
    """Model files first, then ``metrics.json``: its presence marks a finished run; then the
    figures ``front.png`` (both fronts, the chosen formulas marked) and ``fit.png`` (the data, the
    teacher and the formulas along each feature)."""
    write_model_files(path, main, data.target_name)
    if base:
        write_model_files(path / "baseline", base, data.target_name)
    storage.write_json(path / "metrics.json", main.metrics)
    _mark(path, "finished")
    fits = {f"regularized (λ = {main.metrics['lam']:.3g})": main}
    if base and base is not main:
        fits["baseline (λ = 0)"] = base
    run_plots.plot_front(
        {label: fit.metrics["front"] for label, fit in fits.items()}, path / "front.png", data.name
    )
    frame = lambda X: pd.DataFrame(X, columns=data.feature_names)
    curves = {"teacher": lambda X: main.estimator.predict_teacher(frame(X))}
    for label, fit in fits.items():
        curves[f"formula, {label}"] = lambda X, est=fit.estimator: est.predict(frame(X))
    run_plots.plot_fit(data.X, data.y, data.feature_names, data.target_name, curves, path / "fit.png")


def write_tuning(path: Path, report: dict) -> None:
    """``tuning.json`` (it marks a finished tuning), then ``tuning.png``: a figure that cannot be
    drawn is a warning and loses no result."""
    storage.write_json(path / "tuning.json", report)
    _mark(path, "finished")
    plot_tuning(report, path / "tuning.png")


@storage.figure
def plot_tuning(report: dict, path: Path) -> None:
    """R² against λ for every trial of a tuning, and the λ chosen."""
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
    storage.write_figure(path, figure)
