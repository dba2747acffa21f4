"""What a λ tuner may do: train teachers and fit students on the training and validation rows
(never the test rows), with every action recorded and counted."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from jacdistill.contracts import Student
from jacdistill.metrics import r2
from jacdistill.teacher import TrainResult


def restart_seed(seed: int, i: int) -> int:
    """The seed of the i-th of several independent restarts of a run seeded ``seed`` (i = 0: the
    run itself); shared by the grid tuner's student restarts and the sweep's control arm."""
    return seed + 1000 * i


@dataclass
class Trial:
    """One trained teacher (and, once fitted, its student) for one λ or λ schedule."""
    lam: float
    model: nn.Module
    training: TrainResult
    teacher_r2_val: float
    seconds: float
    student: Student | None = None
    student_r2_val: float | None = None
    extra: dict = field(default_factory=dict)  # tuner-specific notes, e.g. the λ trajectory

    @property
    def val_mse(self) -> float:
        return self.training.best_val_mse

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (no model)."""
        return {"lam": self.lam, "teacher_r2_val": self.teacher_r2_val,
                "student_r2_val": self.student_r2_val, "seconds": self.seconds,
                "epochs": self.training.epochs_run, **self.extra}


class Search:
    """Trains teachers and fits students for a tuner, caching by λ and counting the cost.

    ``train(lam_or_schedule)`` returns (model, TrainResult); ``fit_student(model, seed)`` returns a
    fitted student (seed None: the problem's). Both see only the training rows; validation rows
    score them. ``fingerprint``
    identifies the problem (data and settings), ``workdir`` is where a tuner may keep files.
    """

    def __init__(self, train: Callable, fit_student: Callable, teacher_predict: Callable,
                 student_predict: Callable, y_val: np.ndarray, fingerprint: str,
                 workdir: Path | None = None):
        self._train, self._fit_student = train, fit_student
        self._teacher_predict, self._student_predict = teacher_predict, student_predict
        self.y_val, self.fingerprint = y_val, fingerprint
        self.workdir = Path(workdir) if workdir is not None else None
        self.trials: list[Trial] = []
        self.teacher_trainings = self.student_fits = 0
        self.teacher_seconds = self.student_seconds = 0.0

    def teacher(self, lam) -> Trial:
        """Train a teacher with constant λ (cached) or with a schedule object (never cached)."""
        if not hasattr(lam, "observe"):
            lam = float(lam)
            for trial in self.trials:
                if trial.lam == lam and "schedule" not in trial.extra:
                    return trial
        started = time.perf_counter()
        model, training = self._train(lam)
        seconds = time.perf_counter() - started
        self.teacher_trainings += 1
        self.teacher_seconds += seconds
        trial = Trial(training.lam, model, training, r2(self.y_val, self._teacher_predict(model)), seconds)
        if hasattr(lam, "observe"):
            trial.extra["schedule"] = type(lam).__name__
        self.trials.append(trial)
        return trial

    def student(self, trial: Trial, seed: int | None = None) -> float:
        """Fit the student on ``trial``'s teacher (once; with ``seed``, else the problem's seed) and
        return its validation R²."""
        if trial.student is None:
            started = time.perf_counter()
            trial.student = self._fit_student(trial.model, seed)
            if seed is not None:
                trial.extra["student_seed"] = seed
            seconds = time.perf_counter() - started
            self.student_fits += 1
            self.student_seconds += seconds
            trial.seconds += seconds
            trial.student_r2_val = r2(self.y_val, self._student_predict(trial.student))
        return trial.student_r2_val

    def release(self) -> None:
        """Drop the training callables (closures over the data): what stays can be pickled."""
        self._train = self._fit_student = self._teacher_predict = self._student_predict = None

    def compute(self) -> dict[str, Any]:
        return {"teacher_trainings": self.teacher_trainings, "student_fits": self.student_fits,
                "seconds": self.teacher_seconds + self.student_seconds}
