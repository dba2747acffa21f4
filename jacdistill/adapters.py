"""Base class for students that wrap a scikit-learn style estimator."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from jacdistill.contracts import Student
from jacdistill.options import JacdistillError


class EstimatorStudent(Student):
    """A student backed by an estimator class with ``fit``/``predict`` and a ``random_state``.

    ``defaults`` are jacdistill's choices for the estimator's parameters; any other parameter of
    the estimator may be set too (``--student-opt generations=50``). ``constraints`` declare the
    values of those that matter, so that a bad one fails before the teacher is trained; the
    estimator checks the others itself when fitted.
    """

    seed_parameter: ClassVar[str] = "random_state"
    # The estimator's parameter for its cores (e.g. "n_threads"), fed from ``Student.jobs``; None:
    # it runs on one core (or parallelism does not pay, as for gplearn's process pool).
    jobs_parameter: ClassVar[str | None] = None

    @classmethod
    @abstractmethod
    def estimator_class(cls) -> type:
        """The wrapped estimator class (imported lazily, so a missing package fails late)."""

    @classmethod
    def accepted_options(cls) -> set[str]:
        reason = cls.unavailable_reason()
        if reason:  # the estimator's own parameters are unknowable without it
            raise JacdistillError(f"{cls.kind} '{cls.name}' {reason}")
        return set(cls.defaults) | (set(cls.estimator_class()().get_params()) - {cls.seed_parameter})

    @classmethod
    def options_hint(cls) -> str:
        estimator = cls.estimator_class()
        return (
            f"{', '.join(sorted(cls.defaults))}, or any parameter of "
            f"{estimator.__module__.split('.')[0]}'s {estimator.__name__}"
        )

    def fit(self, X: np.ndarray, y: np.ndarray) -> EstimatorStudent:
        options: dict[str, Any] = {**self.options, self.seed_parameter: self.seed}
        if self.jobs_parameter:  # the student's cores, unless an option set them
            options.setdefault(self.jobs_parameter, self.jobs)
        self.estimator_ = self.estimator_class()(**options).fit(X, y)
        self.n_features_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator_.predict(X), dtype=np.float64).reshape(-1)
