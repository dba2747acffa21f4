"""Accuracy–complexity fronts and the rule that picks one formula from a front.

A student offers candidates (:meth:`jacdistill.contracts.Student.candidates`); :func:`front` scores
them on the rows the student was fitted to and keeps the non-dominated ones, simplest first.
A :class:`Rule` then chooses one member by its R² on validation rows, the same rule for every fit
(regularized, baseline, direct, control), so that arms differ only in their teachers:

- ``best``: the highest validation R²;
- ``parsimony=TOL``: the simplest member whose validation R² is within TOL of the best;
- ``complexity=K``: the highest validation R² among members of complexity at most K (the
  simplest member when none is that simple).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from jacdistill.metrics import rank_score
from jacdistill.options import JacdistillError

if TYPE_CHECKING:  # the sweep reads the rules without loading torch and sympy
    from jacdistill.contracts import Candidate, Student

DEFAULT_RULE = "parsimony=0.01"  # measured: see benchmarks/selection.py and README


def front(student: Student, X: np.ndarray, y: np.ndarray) -> list[Candidate]:
    """The fitted ``student``'s candidates, scored by their mean squared error on (X, y), that no
    other candidate beats on both complexity and error; sorted by complexity (error falling)."""
    candidates = student.candidates()
    if not candidates:
        raise JacdistillError(f"student '{student.name}' offered no candidate model")
    for candidate in candidates:
        with np.errstate(all="ignore"):
            error = float(np.mean((candidate.predict(X) - y) ** 2))
        candidate.error = error if math.isfinite(error) else math.inf
    return non_dominated(candidates)


def non_dominated(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates no other is at least as simple and strictly more accurate than (the first
    of equals kept), sorted by complexity; an infinite error is kept only when all are."""
    ordered = sorted(candidates, key=lambda c: (c.complexity, c.error))
    kept: list[Candidate] = []
    for candidate in ordered:
        if not kept or candidate.error < kept[-1].error:
            kept.append(candidate)
    return kept


def is_rule(text: object) -> bool:
    """Whether ``text`` is a selection rule :meth:`Rule.parse` accepts."""
    try:
        Rule.parse(text)  # type: ignore[arg-type]
    except JacdistillError:
        return False
    return True


@dataclass(frozen=True)
class Rule:
    kind: str  # "best", "parsimony" or "complexity"
    value: float = 0.0  # the tolerance or the complexity cap

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``best``, ``parsimony=TOL`` (TOL ≥ 0) or ``complexity=K`` (K ≥ 1)."""
        if not isinstance(text, str):
            raise JacdistillError(f"select must be text such as 'best' or 'parsimony=0.01', got {text!r}")
        name, _, value = text.strip().partition("=")
        try:
            if name == "best" and not value:
                return cls("best")
            if name == "parsimony" and float(value) >= 0:
                return cls("parsimony", float(value))
            if name == "complexity" and int(value) >= 1:
                return cls("complexity", int(value))
        except ValueError:
            pass
        raise JacdistillError(
            f"select must be best, parsimony=TOL (TOL ≥ 0) or complexity=K (K ≥ 1), got {text!r}"
        )

    def __str__(self) -> str:
        return self.kind if self.kind == "best" else f"{self.kind}={self.value:g}"

    def choose(self, complexities: Sequence[int], val_r2: Sequence[float | None]) -> int:
        """The index of the chosen member of a front (complexities ascending); a NaN or missing R²
        (a formula that blows up on validation rows) ranks last."""
        scores = [rank_score(r) for r in val_r2]
        indices = range(len(scores))
        if self.kind == "complexity":
            allowed = [i for i in indices if complexities[i] <= self.value] or [0]
            return max(allowed, key=lambda i: (scores[i], -i))
        best = max(indices, key=lambda i: (scores[i], -i))
        if self.kind == "best" or not math.isfinite(scores[best]):
            return best
        return min(i for i in indices if scores[i] >= scores[best] - self.value)
