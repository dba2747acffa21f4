"""What a λ tuner works with: a :class:`Problem` (the training and validation rows, never the
test rows), a :class:`Search` that trains teachers and fits students on it, caching and counting
each, and the :class:`Tuner` contract that drives a search."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jacdistill import fronts, teacher
from jacdistill.contracts import Candidate, Regularizer, Student
from jacdistill.metrics import r2
from jacdistill.options import JacdistillError, PluginOptions
from jacdistill.teacher import EarlyStopping, Schedule, TrainConfig, TrainResult

# progress(stage, done, total): stage is "teacher" (epochs) or "student" (0 then 1 of 1)
Progress = Callable[[str, int, int], None]


def restart_seed(seed: int, i: int) -> int:
    """The seed of the i-th of several independent restarts of a run seeded ``seed`` (i = 0: the
    run itself); shared by the grid tuner's student restarts and the sweep's control arm."""
    return seed + 1000 * i


@dataclass(frozen=True)
class Problem:
    """One distillation problem in standardized units: what a teacher trains on and is scored
    on, what a student fits, and how each is built."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_student: np.ndarray  # the rows the student fits (teacher's units): training rows, plus augmentation
    regularizer: Regularizer
    widths: tuple[int, ...]
    activation: str
    config: TrainConfig
    new_student: Callable[[int], Student]  # seed -> an unfitted student
    seed: int
    fingerprint: str  # identifies data and settings (an Optuna study's name)
    workdir: Path | None = None  # where a tuner may keep files
    progress: Progress | None = None
    batch_teachers: bool = True  # train several candidates as one stack where the penalty allows
    jobs: int = 1  # cores a student fit may use
    select: fronts.Rule = fronts.Rule.parse(fronts.DEFAULT_RULE)  # which front member a fit gives
    # the student's inputs are the teacher's plus this: 0 (standardized) or mean/std (scaled)
    student_offset: np.ndarray | float = 0.0

    def train_teachers(
        self, schedules: Sequence[Schedule], seeds: Sequence[int] | None = None
    ) -> list[tuple[teacher.MLP, TrainResult]]:
        """One teacher per schedule, each from the initial weights and minibatch order of its seed
        (default: the problem's): trained together as one stack where the regularizer handles
        stacks and ``batch_teachers`` allows, else one after another (the same numbers, within
        float rounding)."""
        seeds = [self.seed] * len(schedules) if seeds is None else list(seeds)
        cuda = [torch.device(self.config.device)] if self.config.device.startswith("cuda") else []
        together = self.batch_teachers and len(schedules) > 1 and self.regularizer.handles_stacks()
        groups = [range(len(schedules))] if together else [[i] for i in range(len(schedules))]
        arrays = (self.X_train, self.y_train, self.X_val, self.y_val, self.config)
        results = []
        for group in groups:
            with torch.random.fork_rng(devices=cuda):  # seeded draws, the caller's RNG state untouched
                models = [self._initial_model(seeds[i]) for i in group]
                if together:
                    mine = ([schedules[i] for i in group], [seeds[i] for i in group])
                    fitted = teacher.train_stack(
                        models, self.regularizer, mine[0], *arrays, mine[1], self._on_epoch
                    )
                    results += [(model.cpu(), training) for model, training in fitted]
                else:
                    (i,) = group
                    training = teacher.train(
                        models[0], self.regularizer, schedules[i], *arrays, seeds[i], self._on_epoch
                    )
                    results.append((models[0].cpu(), training))
        return results

    def _initial_model(self, seed: int) -> teacher.MLP:
        torch.manual_seed(seed)  # candidates of one seed start from the same weights; seeded draws after
        return teacher.MLP(self.X_train.shape[1], self.widths, 1, self.activation)

    def _on_epoch(self, epoch: int, val_mse: float) -> None:
        if self.progress:
            self.progress("teacher", epoch, self.config.epochs)

    def fit_student(self, model: nn.Module, seed: int) -> Student:
        """A student seeded ``seed`` fitted to ``model``'s predictions on the student inputs."""
        if self.progress:
            self.progress("student", 0, 1)
        student = self.new_student(seed)
        student.jobs = self.jobs
        try:
            student.fit(self.X_student + self.student_offset, teacher.predict(model, self.X_student))
        except (ValueError, TypeError) as exc:  # most often an option value the student rejects
            raise JacdistillError(
                f"student '{student.name}' failed to fit: {type(exc).__name__}: {exc}".splitlines()[0]
            ) from exc
        if self.progress:
            self.progress("student", 1, 1)
        return student

    def front(self, student: Student, model: nn.Module) -> tuple[list[Candidate], list[float], int]:
        """The fitted ``student``'s front on the rows it fitted (``model``'s labels), each
        member's validation R², and the member this problem's rule selects."""
        labels = teacher.predict(model, self.X_student)
        members = fronts.front(student, self.X_student + self.student_offset, labels)
        scores = [r2(self.y_val, member.predict(self.X_val + self.student_offset)) for member in members]
        return members, scores, self.select.choose([m.complexity for m in members], scores)


@dataclass
class Trial:
    """One trained teacher (and, once fitted, its student) for one λ or λ schedule."""

    lam: float  # the λ in force at the kept epoch
    model: nn.Module
    training: TrainResult
    teacher_r2_val: float
    seconds: float
    student: Student | None = None
    student_r2_val: float | None = None  # the chosen front member's
    extra: dict = field(default_factory=dict)  # tuner-specific notes, e.g. the λ trajectory
    front: list[Candidate] = field(default_factory=list)  # the student's front, simplest first
    front_r2_val: list[float] = field(default_factory=list)  # each member's validation R²
    chosen: int = -1  # the member the problem's rule selected

    @property
    def val_mse(self) -> float:
        """The validation MSE of the weights kept (the last epoch's with keep="last")."""
        return self.training.best_val_mse

    @property
    def candidate(self) -> Candidate:
        """The selected member of the student's front (once the student is fitted)."""
        if self.chosen < 0:
            raise RuntimeError("this trial's student is not fitted")
        return self.front[self.chosen]

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (no model)."""
        return {
            "lam": self.lam,
            "teacher_r2_val": self.teacher_r2_val,
            "student_r2_val": self.student_r2_val,
            "seconds": self.seconds,
            "epochs": self.training.epochs_run,
            **self.extra,
        }


class Search:
    """Trains teachers and fits students on a :class:`Problem` for a tuner, caching teachers by
    λ and counting the cost. Candidates may be asked for several at a time (``teachers``)."""

    def __init__(self, problem: Problem, reuse: Sequence[Trial] = ()):
        """``reuse``: trials of an earlier search on the same rows and settings, taken as they are
        instead of trained (and not counted as this search's compute)."""
        self.problem: Problem | None = problem
        self.seed = problem.seed  # kept after release: it tells this search's own trials apart
        self.trials = [dataclasses.replace(t, extra=dict(t.extra)) for t in reuse]  # ours to fill in
        self.teacher_trainings = self.student_fits = 0
        self.teacher_seconds = self.student_seconds = 0.0
        self.select_seconds = 0.0  # of the student seconds: scoring fronts and selecting

    @property
    def live(self) -> Problem:
        """The problem, while the search is open (see :meth:`release`)."""
        if self.problem is None:
            raise RuntimeError("this search is over: its problem was released")
        return self.problem

    @property
    def workdir(self) -> Path | None:
        return self.live.workdir

    @property
    def fingerprint(self) -> str:
        return self.live.fingerprint

    def teachers(self, lams: Sequence[float]) -> list[Trial]:
        """One trial per λ (constant, early stopping on validation MSE as the problem's config
        says); each λ is trained once, and those not trained yet are trained together."""
        new = [lam for lam in dict.fromkeys(map(float, lams)) if self._cached(lam) is None]
        self._train([EarlyStopping.of(lam, self.live.config) for lam in new])
        return [self._cached(float(lam)) for lam in lams]  # type: ignore[misc]  # all trained now

    def teacher(self, lam: float) -> Trial:
        """The trial for one constant λ (see :meth:`teachers`)."""
        return self.teachers([lam])[0]

    def restarts(self, lam: float, seeds: Sequence[int]) -> list[Trial]:
        """Teachers at ``lam`` from other seeds' initial weights and minibatch order (restarts of
        this problem: the sweep's control), trained together; not cached (each trial's
        ``extra["seed"]`` says which). Their students are seeded alike by ``student_r2(trial, seed)``."""
        trials = self._train([EarlyStopping.of(lam, self.live.config) for _ in seeds], seeds)
        for trial, seed in zip(trials, seeds):
            trial.extra["seed"] = seed
        return trials

    def scheduled(self, schedule: Schedule) -> Trial:
        """A teacher trained under a λ schedule of the tuner's own (never cached), which decides
        itself which epoch's weights it keeps: the problem's keep must be "best"."""
        keep = self.live.config.keep
        if keep != "best":
            raise JacdistillError(
                f"keep='{keep}' is not supported by a tuner that moves λ during training (its "
                f"{type(schedule).__name__} chooses the epoch kept); use keep='best' or another tuner"
            )
        (trial,) = self._train([schedule])
        trial.extra["schedule"] = type(schedule).__name__
        return trial

    def _cached(self, lam: float) -> Trial | None:
        own = lambda t: "schedule" not in t.extra and t.extra.get("seed", self.seed) == self.seed
        return next((t for t in self.trials if t.lam == lam and own(t)), None)

    def _train(self, schedules: list[Schedule], seeds: Sequence[int] | None = None) -> list[Trial]:
        if not schedules:
            return []
        started = time.perf_counter()
        fitted = self.live.train_teachers(schedules, seeds)
        seconds = (time.perf_counter() - started) / len(schedules)  # a share of the batch's time
        self.teacher_trainings += len(schedules)
        self.teacher_seconds += seconds * len(schedules)
        trials = [
            Trial(
                training.lam,
                model,
                training,
                r2(self.live.y_val, teacher.predict(model, self.live.X_val)),
                seconds,
            )
            for model, training in fitted
        ]
        self.trials += trials
        return trials

    def reusable(self, lam: float, student: bool = True) -> Trial | None:
        """A copy of the constant-λ trial for ``lam`` to hand to another search of the same
        problem (a baseline reusing its tuner's λ = 0 teacher): its student too if ``student`` and
        it was seeded with the problem's seed (not when the other search's students differ)."""
        trial = self._cached(float(lam))
        if trial is None:
            return None
        own_student = student and "student_seed" not in trial.extra and trial.chosen >= 0
        copy = Trial(trial.lam, trial.model, trial.training, trial.teacher_r2_val, 0.0)
        copy.extra["reused"] = True
        if own_student:
            copy.student, copy.student_r2_val = trial.student, trial.student_r2_val
            copy.front, copy.front_r2_val, copy.chosen = trial.front, trial.front_r2_val, trial.chosen
        return copy

    def student_r2(self, trial: Trial, seed: int | None = None) -> float:
        """Fit the student on ``trial``'s teacher (once; seeded ``seed``, else the problem's seed),
        select a member of its front by the problem's rule on the validation rows, and return that
        member's validation R²."""
        if trial.chosen < 0:
            problem, started = self.live, time.perf_counter()
            trial.student = problem.fit_student(trial.model, problem.seed if seed is None else seed)
            fitted = time.perf_counter()
            trial.front, trial.front_r2_val, trial.chosen = problem.front(trial.student, trial.model)
            self.select_seconds += time.perf_counter() - fitted
            if seed is not None:
                trial.extra["student_seed"] = seed
            seconds = time.perf_counter() - started
            self.student_fits += 1
            self.student_seconds += seconds
            trial.seconds += seconds
            trial.student_r2_val = trial.front_r2_val[trial.chosen]
        return trial.front_r2_val[trial.chosen]

    def student_r2s(self, trials: Sequence[Trial], seeds: Sequence[int | None] | None = None) -> list[float]:
        """:meth:`student_r2` for several trials (``seeds``: one per trial)."""
        seeds = [None] * len(trials) if seeds is None else seeds
        return [self.student_r2(trial, seed) for trial, seed in zip(trials, seeds)]

    def release(self) -> None:
        """Drop the problem (data, plugins, progress callback) once the search is over: the trials
        and counts that stay can be pickled with the estimator."""
        self.problem = None

    def compute(self) -> dict[str, Any]:
        return {
            "teacher_trainings": self.teacher_trainings,
            "student_fits": self.student_fits,
            "seconds": self.teacher_seconds + self.student_seconds,
        }


class Tuner(PluginOptions, ABC):
    """Chooses λ for one problem, seeing only its training and validation rows.

    ``tune(search)`` asks the :class:`Search` for teachers (``search.teachers([λ, …])``, or
    ``search.scheduled(schedule)``) and students' validation R² (``search.student_r2(trial)``),
    and returns the chosen :class:`Trial`; the distiller then uses that trial's teacher (and
    student, if fitted) as they are.
    """

    kind = "tuner"

    def __init__(self, seed: int = 0, **options: Any):
        self.seed = seed
        self.options = self.resolve_options(options)

    @abstractmethod
    def tune(self, search: Search) -> Trial:
        """Return the chosen trial."""
