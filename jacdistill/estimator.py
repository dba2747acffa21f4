"""``Distiller``: the whole method as one scikit-learn estimator (the CLI is a thin layer on it).

fit: standardize on the training rows, train the teacher MLP with MSE + λ·penalty (early stopping
on validation MSE), fit the student on the teacher's predictions, and export the student's formula
in the data's own units. predict: the student's formula.
"""
from __future__ import annotations

import hashlib
import math
import numbers
from typing import Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from jacdistill import formula, teacher
from jacdistill.options import JacdistillError
from jacdistill.data import Standardizer, split_indices
from jacdistill.registry import registry
from jacdistill.tuning import Search

# progress(stage, done, total): stage is "teacher" (epochs) or "student" (0 then 1 of 1)
Progress = Callable[[str, int, int], None]


class Distiller(RegressorMixin, BaseEstimator):
    """Distil a smooth teacher MLP into a symbolic student.

    Parameters are plugin names and hyper-parameters: ``regularizer``, ``student`` and ``tuner``
    name plugins (see ``jacdistill plugins``) and ``*_options`` are passed to them; ``lam`` is the
    penalty weight λ, or ``"auto"`` to let the tuner choose it on the validation rows;
    ``reg_every=k`` applies the penalty every k-th step with weight k·λ. ``augment=m`` lets the
    teacher also label m·n extra inputs drawn near the n training rows (Gaussian jitter of
    ``jitter`` standard deviations per feature) for the student to fit, which direct symbolic
    regression cannot do. Without ``X_val``/``y_val``, ``fit`` holds out
    ``validation_fraction`` of its rows for early stopping and tuning.
    """

    def __init__(self, regularizer="jacobian", lam="auto", student="operon", student_options=None,
                 regularizer_options=None, reg_every=1, tuner="constrained", tuner_options=None,
                 augment=0.0, jitter=0.1, widths=(64, 64), activation="silu", epochs=500,
                 batch_size=64, lr=3e-3, patience=40, validation_fraction=0.15, device="cpu", seed=0):
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
        self.validation_fraction = validation_fraction
        self.device = device
        self.seed = seed

    def resolve_plugins(self):
        """Check λ, the device and the plugin names and options; return (regularizer, student
        options, student class, tuner or None). Raises JacdistillError before any training."""
        lam = self.lam
        if lam != "auto" and (isinstance(lam, bool) or not isinstance(lam, numbers.Real)
                              or not 0 <= lam < math.inf):
            raise JacdistillError(f"lam must be 'auto' or a finite number >= 0, got {lam!r}")
        if not (isinstance(self.augment, numbers.Real) and self.augment >= 0
                and isinstance(self.jitter, numbers.Real) and self.jitter >= 0):
            raise JacdistillError(f"augment and jitter must be numbers >= 0, got {self.augment!r}, {self.jitter!r}")
        if not (isinstance(self.reg_every, int) and self.reg_every >= 1):
            raise JacdistillError(f"reg_every must be a positive integer, got {self.reg_every!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise JacdistillError(f"device '{self.device}' requested but CUDA is not available here")
        plugins = registry()
        reg_cls = plugins.available("regularizer", self.regularizer)
        student_cls = plugins.available("student", self.student)
        tuner = (plugins.available("tuner", self.tuner)(seed=self.seed, **(self.tuner_options or {}))
                 if lam == "auto" else None)
        regularizer = reg_cls(**(self.regularizer_options or {}))
        regularizer.check_device(self.device)
        return regularizer, student_cls.resolve_options(self.student_options or {}), student_cls, tuner

    def fit(self, X, y, X_val=None, y_val=None, progress: Progress | None = None, workdir=None):
        """Fit on (X, y); ``X_val``/``y_val`` score early stopping and tuning; ``progress`` gets
        (stage, done, total) updates; a tuner may keep files (an Optuna study) in ``workdir``."""
        regularizer, student_options, student_cls, tuner = self.resolve_plugins()
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if X_val is None:
            if len(X) < 3:
                raise ValueError(f"Distiller needs at least 3 samples (training and validation), "
                                 f"got n_samples = {len(X)}")
            split = split_indices(len(X), self.seed, val=max(1 / len(X), self.validation_fraction), test=0.0)
            X, y, X_val, y_val = X[split.train], y[split.train], X[split.val], y[split.val]
        else:
            X_val, y_val = validate_data(self, X_val, y_val, y_numeric=True, dtype=np.float64, reset=False)
        self.x_scaler_, self.y_scaler_ = Standardizer.fit(X), Standardizer.fit(y[:, None])
        Xs, Xv = self.x_scaler_.transform(X), self.x_scaler_.transform(X_val)
        ys, yv = (self.y_scaler_.transform(v[:, None])[:, 0] for v in (y, y_val))

        config = teacher.TrainConfig(self.epochs, self.batch_size, self.lr, self.patience, self.device,
                                     self.reg_every)

        def train(lam):
            cuda = [torch.device(self.device)] if self.device.startswith("cuda") else []
            with torch.random.fork_rng(devices=cuda):  # seeded draws, caller's RNG state untouched
                torch.manual_seed(self.seed)  # every λ starts from the same weights
                model = teacher.MLP(X.shape[1], tuple(self.widths), 1, self.activation)
                on_epoch = (lambda epoch, _: progress("teacher", epoch, self.epochs)) if progress else None
                training = teacher.train(model, regularizer, lam, Xs, ys, Xv, yv, config, self.seed, on_epoch)
            return model.cpu(), training

        rng = np.random.default_rng(self.seed)
        extra = Xs[rng.integers(len(Xs), size=round(self.augment * len(Xs)))]
        X_student = np.vstack([Xs, extra + self.jitter * rng.standard_normal(extra.shape)])

        def fit_student(model, seed=None):
            if progress:
                progress("student", 0, 1)
            student = student_cls(seed=self.seed if seed is None else seed, **student_options)
            try:
                student.fit(X_student, teacher.predict(model, X_student))
            except (ValueError, TypeError) as exc:  # most often an option value the student rejects
                raise JacdistillError(f"student '{self.student}' failed to fit: "
                                      f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
            if progress:
                progress("student", 1, 1)
            return student

        self.search_ = Search(train, fit_student, lambda model: teacher.predict(model, Xv),
                              lambda student: student.predict(Xv), yv, self._fingerprint(Xs, ys, Xv, yv),
                              workdir)
        chosen = tuner.tune(self.search_) if tuner else self.search_.teacher(float(self.lam))
        self.search_.student(chosen)
        self.search_.release()
        self.lam_, self.teacher_, self.training_, self.student_ = (
            chosen.lam, chosen.model, chosen.training, chosen.student)
        self.expression_ = self.student_.expression()
        self.complexity_ = self.student_.complexity()
        self.formula_ = formula.to_original_units(self.expression_, self.x_scaler_, self.y_scaler_,
                                                  self.feature_names())
        self.timings_ = {"teacher": self.search_.teacher_seconds, "student": self.search_.student_seconds}
        return self

    def _fingerprint(self, *arrays) -> str:
        """Short hash of the data and every setting but the tuner's options (a study's identity)."""
        digest = hashlib.sha1(repr(sorted((k, v) for k, v in self.get_params().items()
                                          if k != "tuner_options")).encode())
        for array in arrays:
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:12]

    def feature_names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else [f"x{i}" for i in range(self.n_features_in_)]

    def _standardized(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.x_scaler_.transform(validate_data(self, X, dtype=np.float64, reset=False))

    def predict(self, X) -> np.ndarray:
        """The student's predictions (what the formula computes), in the target's units."""
        X = self._standardized(X)
        return self.y_scaler_.inverse(self.student_.predict(X)[:, None])[:, 0]

    def predict_teacher(self, X) -> np.ndarray:
        """The teacher MLP's predictions, in the target's units."""
        X = self._standardized(X)
        return self.y_scaler_.inverse(teacher.predict(self.teacher_, X)[:, None])[:, 0]

    def formula(self, target: str = "y", digits: int | None = None) -> str:
        """The student's formula in the data's units, e.g. ``y = 3.1*x0 + sin(x1)``."""
        check_is_fitted(self)
        return formula.as_text(self.formula_, target, digits)
