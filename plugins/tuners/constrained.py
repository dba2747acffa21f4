"""``constrained``: the largest λ whose teacher stays within ``tol`` (relative) of the λ = 0
teacher's validation MSE, found by k-section in log λ. No student is fitted while searching.

The first round trains λ = 0, ``hi`` and ``lo`` together; each later round trains ``round_size``
candidates together, evenly spaced in log λ inside the bracket [largest feasible, smallest
infeasible], until ``max_trainings`` teachers are spent. ``round_size=1`` is plain bisection; a
larger round costs little more wall time on batched teachers and narrows the bracket by
``round_size + 1`` per round instead of 2 (with the defaults, 0, 1e-4 … 1 in decades).

``speculate`` (default) trains the second round with the first: its points depend on the first
round only when that round ends the search (``hi`` feasible, or ``lo`` not), so the result is
the same, in one batch of teachers instead of two, at the price of the second round's trainings
in those two cases."""

import math

from jacdistill import Tuner, hookimpl
from jacdistill.options import Boolean, Interval


class ConstrainedTuner(Tuner):
    name = "constrained"
    defaults = {"tol": 0.05, "lo": 1e-4, "hi": 1.0, "max_trainings": 6, "round_size": 3, "speculate": True}
    constraints = {
        "tol": Interval(float, 0, None),
        "lo": Interval(float, 0, None, closed="neither"),
        "hi": Interval(float, 0, None, closed="neither"),
        "max_trainings": Interval(int, 3, None),
        "round_size": Interval(int, 1, None),
        "speculate": Boolean,
    }

    @classmethod
    def check_options(cls, options):
        if not options["lo"] < options["hi"]:
            raise cls.option_error("lo", f"below hi={options['hi']!r}", options["lo"])

    def tune(self, search):
        tol, lo, hi, budget, size, speculate = (
            self.options[k] for k in ("tol", "lo", "hi", "max_trainings", "round_size", "speculate")
        )
        low, high = math.log10(lo), math.log10(hi)  # invariant once checked: low feasible, high not
        rounds = lambda n: [low + (high - low) * (i + 1) / (n + 1) for i in range(n)]
        ahead = rounds(min(size, budget - 3)) if speculate else []
        reference, top, best, *early = search.teachers([0.0, hi, lo, *(10**p for p in ahead)])
        feasible = lambda trial: trial.val_mse <= (1 + tol) * reference.val_mse
        if feasible(top):
            return top
        if not feasible(best):
            return reference
        spent = 3
        while spent < budget:
            points = ahead or rounds(min(size, budget - spent))
            trials = early or search.teachers([10**p for p in points])
            ahead, early, spent = [], [], spent + len(points)
            # the largest feasible candidate is the new low, the candidate above it the new high
            passed = [i for i, trial in enumerate(trials) if feasible(trial)]
            if passed:
                best, low = trials[passed[-1]], points[passed[-1]]
            above = passed[-1] + 1 if passed else 0
            if above < len(points):
                high = points[above]
        return best


@hookimpl
def register_tuners(register):
    register(ConstrainedTuner)
