"""scikit-learn estimators: ``Distiller`` (the whole method; the CLI is a thin layer on it) and
``DirectRegressor`` (the student fitted to the data itself, the comparison every distillation
needs). Both standardize on their training rows and give the student's formula in the data's units.
The student sees the same standardized inputs as the teacher, or (``student_inputs="scaled"``) the
inputs divided by their standard deviation but not centred, where a monomial such as k·x² stays a
monomial instead of becoming a product of affine factors (benchmarks/student_inputs.py).

Distiller.fit: train the teacher MLP with MSE + λ·penalty (early stopping on validation MSE; λ fixed
or chosen by a tuner through a :class:`jacdistill.search.Search`), fit the student on the teacher's
predictions, and export the student's formula. predict: the student's formula.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import sympy
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from jacdistill import formula, fronts, readable, teacher
from jacdistill.contracts import Candidate, Regularizer, Student
from jacdistill.data import SPLIT, Standardizer, split_indices
from jacdistill.metrics import r2
from jacdistill.options import (
    STUDENT_INPUTS,
    Boolean,
    Interval,
    JacdistillError,
    ListOf,
    OneOf,
    Satisfies,
    Text,
    as_constraint,
)
from jacdistill.registry import registry
from jacdistill.search import Problem, Progress, Search, Trial, Tuner


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class FormulaEstimator(RegressorMixin, BaseEstimator):
    """What both estimators share: scaling fitted on the training rows, a fitted student over
    standardized (or scaled) inputs, and its formula in the data's units."""

    def _scale(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Fit the scalers on (X, y) and return both standardized (y as a 1-d array);
        ``student_scaler_`` maps X to the student's inputs (``student_inputs``)."""
        self.x_scaler_, self.y_scaler_ = Standardizer.fit(X), Standardizer.fit(y[:, None])
        self.student_scaler_ = (
            self.x_scaler_
            if self.student_inputs == "standardized"
            else Standardizer(np.zeros_like(self.x_scaler_.mean), self.x_scaler_.scale)
        )
        return self.x_scaler_.transform(X), self.y_scaler_.transform(y[:, None])[:, 0]

    def _adopt(
        self, student: Student, front: list[Candidate], scores: list[float], chosen: int, Xr, yr
    ) -> None:
        """Make member ``chosen`` of ``student``'s front (fitted on the student's inputs;
        ``scores``: the members' validation R²) this estimator's model, its formula made readable
        (``jacdistill.readable``) on the rows ``Xr`` (student inputs) and ``yr`` (standardized
        targets): the training and validation rows, so that a formula rounded or shortened on a
        few validation rows cannot lose what the others show (servo's 25)."""
        self.student_, self.front_members_, self.front_r2_val_, self.chosen_ = student, front, scores, chosen
        self.expression_ = front[chosen].expression
        self.complexity_ = front[chosen].complexity
        X_rows, y_rows = self.student_scaler_.inverse(Xr), self.y_scaler_.inverse(yr[:, None])[:, 0]
        self.formula_ = readable.readable(
            self.member_formula(chosen), self.feature_names(), X_rows, y_rows, drop_terms=self.drop_terms
        )

    @property
    def front_(self) -> pd.DataFrame:
        """The student's accuracy–complexity front, simplest first: each member's complexity,
        validation R² (against the truth) and, for a distiller, fidelity R² (against the teacher,
        on the validation rows), whether the selection rule chose it, and its formula (constants
        to 4 significant digits; ``member_formula(i)`` gives member i's in full)."""
        check_is_fitted(self)
        table = pd.DataFrame(
            {
                "complexity": [m.complexity for m in self.front_members_],
                "student_r2_val": self.front_r2_val_,
                "fidelity_r2_val": getattr(self, "front_fidelity_val_", None),
                "chosen": [i == self.chosen_ for i in range(len(self.front_members_))],
                "formula": [
                    formula.as_text(self.member_formula(i), "y", digits=4).partition(" = ")[2]
                    for i in range(len(self.front_members_))
                ],
            }
        )
        return table.dropna(axis=1, how="all")

    def member_formula(self, i: int) -> sympy.Expr:
        """Front member ``i``'s formula in the data's units, constants in full precision."""
        check_is_fitted(self)
        expr = self.front_members_[i].expression
        return formula.to_original_units(expr, self.student_scaler_, self.y_scaler_, self.feature_names())

    def feature_names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else [f"x{i}" for i in range(self.n_features_in_)]

    def _standardized(self, X: ArrayLike) -> np.ndarray:
        check_is_fitted(self)
        return self.x_scaler_.transform(validate_data(self, X, dtype=np.float64, reset=False))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """What the displayed formula (``formula_``) computes, in the target's units."""
        check_is_fitted(self)
        rows = np.asarray(validate_data(self, X, dtype=np.float64, reset=False))
        return formula.evaluate(self.formula_, self.feature_names(), rows)

    def formula(self, target: str = "y", digits: int | None = None) -> str:
        """The student's formula in the data's units, e.g. ``y = 3.1*x0 + sin(x1)``, over safe
        identifiers for the column names (``jacdistill.formula.variables(self.formula_, target)``
        maps them back; ``formula_`` is the sympy expression over the names themselves)."""
        check_is_fitted(self)
        return formula.as_text(self.formula_, target, digits)


class DirectRegressor(FormulaEstimator):
    """Symbolic regression on the data itself, no teacher: ``student`` (a plugin name) with
    ``student_options``, seeded ``seed``, fitted to the standardized (or, with
    ``student_inputs="scaled"``, scaled) rows; ``select`` and ``drop_terms`` as for ``Distiller``."""

    def __init__(
        self,
        student="operon",
        student_options=None,
        seed=0,
        jobs=None,
        select=fronts.DEFAULT_RULE,
        student_inputs="standardized",
        drop_terms=True,
    ):
        self.student = student
        self.student_options = student_options
        self.seed = seed
        self.jobs = jobs
        self.select = select
        self.student_inputs = student_inputs
        self.drop_terms = drop_terms

    def fit(
        self, X: ArrayLike, y: ArrayLike, X_val: ArrayLike | None = None, y_val: ArrayLike | None = None
    ) -> DirectRegressor:
        """Fit on (X, y); the front member is selected on (``X_val``, ``y_val``) if given, else
        on the training rows."""
        rule = fronts.Rule.parse(self.select)
        if not OneOf(*STUDENT_INPUTS).accepts(self.student_inputs):
            raise JacdistillError(
                f"student_inputs must be one of {', '.join(STUDENT_INPUTS)}, got {self.student_inputs!r}"
            )
        cls = registry().student(self.student)
        options = cls.resolve_options(self.student_options or {})
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        _, ys = self._scale(X, y)
        Xs = self.student_scaler_.transform(np.asarray(X))
        student = cls(seed=self.seed, **options)
        student.jobs = available_cores() if self.jobs is None else self.jobs
        front = fronts.front(student.fit(Xs, ys), Xs, ys)
        if X_val is None or y_val is None:
            Xv, yv, Xr, yr = Xs, ys, Xs, ys
        else:
            Xc, yc = validate_data(self, X_val, y_val, y_numeric=True, dtype=np.float64, reset=False)
            Xv, yv = self.student_scaler_.transform(Xc), self.y_scaler_.transform(yc[:, None])[:, 0]
            Xr, yr = np.concatenate([Xs, Xv]), np.concatenate([ys, yv])
        scores = [r2(yv, member.predict(Xv)) for member in front]
        self._adopt(student, front, scores, rule.choose([m.complexity for m in front], scores), Xr, yr)
        return self


def device_problem(device) -> str | None:
    """Why a teacher cannot train on ``device`` here (None: it can): ``cpu``, or ``cuda`` /
    ``cuda:N`` naming a GPU this machine has; anything else torch parses (meta, mps, ...) is refused."""
    if not isinstance(device, str):
        return f"device must be text such as 'cpu' or 'cuda', got {device!r}"
    try:
        parsed = torch.device(device)
    except Exception:  # noqa: BLE001 - torch raises RuntimeError or ValueError for a malformed one
        return f"device '{device}' is not a device; use cpu, cuda or cuda:N"
    if parsed.type == "cpu" and parsed.index in (None, 0):
        return None
    if parsed.type != "cuda":
        return f"device '{device}' is not supported; use cpu, cuda or cuda:N"
    if not torch.cuda.is_available():
        return f"device '{device}' requested but CUDA is not available here"
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        return f"device '{device}' requested but this machine has {count} CUDA device(s)"
    return None


def available_memory(device: str) -> int | None:
    """Bytes of memory free for a teacher on ``device`` (None: unknown)."""
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh if ":" in line)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_problem(widths: tuple[int, ...], device: str) -> str | None:
    """Why an MLP with hidden ``widths`` cannot fit in memory on ``device`` (None: it may). A lower
    bound: one input and one output, float32 weights, gradients and Adam's two moments."""
    parameters, before = 0, 1
    for width in (*widths, 1):
        parameters, before = parameters + (before + 1) * width, width
    need, free = 16 * parameters, available_memory(device)
    if free is None or need <= free:
        return None
    gib = lambda n: f"{n / 2**30:.3g} GiB"
    return (
        f"widths {','.join(map(str, widths))}: {parameters:.3g} teacher parameters need at least "
        f"{gib(need)} (weights, gradients, optimizer state) but {gib(free)} is free on {device}"
    )


class Distiller(FormulaEstimator):
    """Distil a smooth teacher MLP into a symbolic student.

    Parameters are plugin names and hyper-parameters: ``regularizer``, ``student`` and ``tuner``
    name plugins (see ``jacdistill plugins``) and ``*_options`` are passed to them; ``lam`` is the
    penalty weight λ, or ``"auto"`` to let the tuner choose it on the validation rows;
    ``reg_every=k`` applies the penalty every k-th step with weight k·λ. ``augment=m`` lets the
    teacher also label m·n extra inputs drawn near the n training rows (Gaussian jitter of
    ``jitter`` standard deviations per feature) for the student to fit, which direct symbolic
    regression cannot do. Without ``X_val``/``y_val``, ``fit`` holds out
    ``validation_fraction`` of its rows for early stopping and tuning. A teacher stops after
    ``patience`` epochs without validation improvement (None: never early, all ``epochs`` run) and
    keeps the weights of its best validation epoch (``keep="best"``) or of the last epoch it
    trained (``keep="last"``; with ``patience=None``: all ``epochs`` trained whatever validation
    says, the paper's regime); tuners judge the weights kept. ``batch_teachers`` trains
    a tuner's candidate teachers together, as one stack of MLPs (batched matrix products), where
    the regularizer allows; False trains them one after another (the same numbers within float
    rounding, slower). ``jobs``: the cores a student fit may use (Operon's threads; None: all
    available). ``student_rows``: the student fits a seeded subsample of at most that many
    teacher-labelled rows (None: all of them; the default, 5 000, cost no student R² on ccpp or a
    50 000-row problem in benchmarks/student_rows.py). ``student_inputs``: the student fits the
    teacher's standardized inputs (``"standardized"``) or the inputs scaled to unit variance but
    not centred (``"scaled"``: the teacher still sees standardized ones). ``drop_terms``: the
    formula shown also leaves out small terms of its sums where R² allows
    (``jacdistill.readable``; False: they stay).
    """

    def __init__(
        self,
        regularizer="jacobian",
        lam="auto",
        student="operon",
        student_options=None,
        regularizer_options=None,
        reg_every=1,
        tuner="constrained",
        tuner_options=None,
        augment=0.0,
        jitter=0.1,
        widths=(64, 64),
        activation="silu",
        epochs=500,
        batch_size=64,
        lr=3e-3,
        patience=40,
        keep="best",
        validation_fraction=SPLIT["val"],
        device="cpu",
        seed=0,
        batch_teachers=True,
        jobs=None,
        student_rows=5000,  # benchmarks/student_rows.py: no loss in student R² at 1 000+ rows
        select=fronts.DEFAULT_RULE,
        student_inputs="standardized",
        drop_terms=True,
    ):
        self.regularizer = regularizer
        self.lam = lam
        self.tuner = tuner
        self.tuner_options = tuner_options
        self.augment = augment
        self.jitter = jitter
        self.student = student
        self.student_options = student_options
        self.regularizer_options = regularizer_options
        self.reg_every = reg_every
        self.widths = widths
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.keep = keep
        self.validation_fraction = validation_fraction
        self.device = device
        self.seed = seed
        self.batch_teachers = batch_teachers
        self.jobs = jobs
        self.student_rows = student_rows
        self.select = select
        self.student_inputs = student_inputs
        self.drop_terms = drop_terms

    # What the parameters accept, checked by resolve_plugins before any training (plugin names
    # and options: by the registry and the plugins). Seeds: numpy's generators take no negative
    # seed, torch none from 2**64, the students' random_state none from 2**32, and restarts seed
    # seed + 1000·i: [0, 2**31 - 1] works for all of them.
    parameter_constraints = {
        "regularizer": Text,
        "student": Text,
        "tuner": Text,
        "regularizer_options": [Satisfies(lambda v: isinstance(v, dict), "a dict"), None],
        "student_options": [Satisfies(lambda v: isinstance(v, dict), "a dict"), None],
        "tuner_options": [Satisfies(lambda v: isinstance(v, dict), "a dict"), None],
        "lam": [OneOf("auto"), Interval(float, 0, None)],
        "augment": Interval(float, 0, None),
        "jitter": Interval(float, 0, None),
        "reg_every": Interval(int, 1, None),
        "widths": ListOf(Interval(int, 1, None)),
        "activation": OneOf(*teacher.ACTIVATIONS),
        "epochs": Interval(int, 1, None),
        "batch_size": Interval(int, 1, None),
        "lr": Interval(float, 0, None, closed="neither"),
        "patience": [Interval(int, 1, None), None],
        "keep": OneOf(*teacher.KEEP),
        "validation_fraction": Interval(float, 0, 1, closed="neither"),
        "device": Satisfies(lambda d: device_problem(d) is None, "cpu, cuda or cuda:N (a GPU present here)"),
        "seed": Interval(int, 0, 2**31 - 1),
        "batch_teachers": Boolean,
        "jobs": [Interval(int, 1, 1024), None],
        "student_rows": [Interval(int, 1, None), None],
        "select": Satisfies(fronts.is_rule, "best, parsimony=TOL (TOL ≥ 0) or complexity=K (K ≥ 1)"),
        "student_inputs": OneOf(*STUDENT_INPUTS),
        "drop_terms": Boolean,
    }

    def resolve_plugins(self) -> tuple[Regularizer, dict, type[Student], Tuner | None]:
        """Check λ, the device and the plugin names and options; return (regularizer, student
        options, student class, tuner or None). Raises JacdistillError before any training."""
        problem = device_problem(self.device)
        if problem:
            raise JacdistillError(problem)
        for key, declared in self.parameter_constraints.items():
            constraint, value = as_constraint(declared), getattr(self, key)
            if not constraint.accepts(value):
                shown = repr(value).replace("\n", " ")
                raise JacdistillError(f"{key} must be {constraint.description}, got {shown[:200]}")
        problem = memory_problem(tuple(self.widths), self.device)
        if problem:
            raise JacdistillError(problem)
        plugins = registry()
        reg_cls = plugins.regularizer(self.regularizer)
        student_cls = plugins.student(self.student)
        # the tuner's name and options are checked even where a fixed λ leaves them unused
        tuner = plugins.tuner(self.tuner)(seed=self.seed, **(self.tuner_options or {}))
        regularizer = reg_cls(**(self.regularizer_options or {}))
        regularizer.check_device(self.device)
        student_options = student_cls.resolve_options(self.student_options or {})
        return regularizer, student_options, student_cls, tuner if self.lam == "auto" else None

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
        progress: Progress | None = None,
        workdir: str | Path | None = None,
        reuse: Sequence[Trial] = (),
    ) -> Distiller:
        """Fit on (X, y); ``X_val``/``y_val`` score early stopping and tuning; ``progress`` gets
        (stage, done, total) updates; a tuner may keep files (an Optuna study) in ``workdir``;
        ``reuse``: trials of another fit on the same rows and settings (``search_.reusable``),
        used instead of training those teachers again."""
        problem, tuner = self.problem(X, y, X_val, y_val, progress, workdir)
        self.search_ = Search(problem, reuse)
        chosen = tuner.tune(self.search_) if tuner else self.search_.teacher(float(self.lam))
        self.search_.student_r2(chosen)
        assert chosen.student is not None  # student_r2 fitted it
        self.search_.release()
        self.lam_, self.teacher_, self.training_ = chosen.lam, chosen.model, chosen.training
        started = time.perf_counter()
        labels = teacher.predict(chosen.model, problem.X_val)
        Xv = problem.X_val + problem.student_offset
        rows = np.concatenate([problem.X_train + problem.student_offset, Xv])
        targets = np.concatenate([problem.y_train, problem.y_val])
        self._adopt(chosen.student, chosen.front, chosen.front_r2_val, chosen.chosen, rows, targets)
        self.front_fidelity_val_ = [r2(labels, member.predict(Xv)) for member in chosen.front]
        search = self.search_
        self.timings_ = {  # selection: scoring fronts, choosing, and making the formula readable
            "teacher": search.teacher_seconds,
            "student": search.student_seconds - search.select_seconds,
            "selection": search.select_seconds + time.perf_counter() - started,
        }
        return self

    def problem(
        self,
        X: ArrayLike,
        y: ArrayLike,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
        progress: Progress | None = None,
        workdir: str | Path | None = None,
    ) -> tuple[Problem, Tuner | None]:
        """The first half of ``fit``: check the settings and rows, fit the scalers, and return the
        standardized :class:`Problem` with the tuner (None for a fixed λ); nothing is trained."""
        regularizer, student_options, student_cls, tuner = self.resolve_plugins()
        X_train, y_train, X_valid, y_valid = self._rows(X, y, X_val, y_val)
        Xs, ys = self._scale(X_train, y_train)
        Xv, yv = self.x_scaler_.transform(X_valid), self.y_scaler_.transform(y_valid[:, None])[:, 0]

        rng = np.random.default_rng(self.seed)
        extra = Xs[rng.integers(len(Xs), size=round(self.augment * len(Xs)))]
        X_student = np.vstack([Xs, extra + self.jitter * rng.standard_normal(extra.shape)])
        if self.student_rows is not None and len(X_student) > self.student_rows:  # a seeded subsample
            X_student = X_student[np.sort(rng.choice(len(X_student), self.student_rows, replace=False))]
        self.student_rows_ = len(X_student)
        config = teacher.TrainConfig(
            self.epochs, self.batch_size, self.lr, self.patience, self.device, self.reg_every, self.keep
        )
        new_student = functools.partial(student_cls, **student_options)
        problem = Problem(
            Xs, ys, Xv, yv, X_student=X_student, regularizer=regularizer, widths=tuple(self.widths),
            activation=self.activation, config=config, new_student=new_student,
            seed=self.seed, fingerprint=self._fingerprint(Xs, ys, Xv, yv),
            workdir=None if workdir is None else Path(workdir), progress=progress,
            batch_teachers=self.batch_teachers, jobs=available_cores() if self.jobs is None else self.jobs,
            select=fronts.Rule.parse(self.select),
            student_offset=self.student_scaler_.transform(self.x_scaler_.mean),  # teacher's 0 to student's
        )  # fmt: skip
        return problem, tuner

    def _rows(self, X, y, X_val, y_val) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Checked training and validation rows; without ``X_val``, held out from (X, y)."""
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if X_val is None:
            if len(X) < 3:
                raise ValueError(
                    f"Distiller needs at least 3 samples (training and validation), got n_samples = {len(X)}"
                )
            split = split_indices(len(X), self.seed, val=max(1 / len(X), self.validation_fraction), test=0.0)
            return X[split.train], y[split.train], X[split.val], y[split.val]
        X_val, y_val = validate_data(self, X_val, y_val, y_numeric=True, dtype=np.float64, reset=False)
        return X, y, X_val, y_val

    def _fingerprint(self, *arrays) -> str:
        """Short hash of the data and every setting that defines the problem (a study's identity):
        not the tuner's options, nor how many cores or which training order compute it."""
        digest = hashlib.sha1(
            repr(
                sorted(
                    (k, v)
                    for k, v in self.get_params().items()
                    if k not in ("tuner_options", "jobs", "batch_teachers")
                )
            ).encode()
        )
        for array in arrays:
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:12]

    def predict_teacher(self, X: ArrayLike, model: nn.Module | None = None) -> np.ndarray:
        """The teacher MLP's predictions, in the target's units (``model``: another teacher of
        this fit's search, such as a tuning trial's, instead of the chosen one)."""
        X = self._standardized(X)
        return self.y_scaler_.inverse(teacher.predict(model or self.teacher_, X)[:, None])[:, 0]
