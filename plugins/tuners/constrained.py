"""``constrained``: the largest λ whose teacher stays within ``tol`` (relative) of the λ = 0
teacher's validation MSE, found by k-section in log λ. No student is fitted while searching.

The first round trains λ = 0, ``hi`` and ``lo`` together; each later round trains ``round_size``
candidates together, evenly spaced in log λ inside the bracket [largest feasible, smallest
infeasible], until ``max_trainings`` teachers are spent. ``round_size=1`` is plain bisection; a
larger round costs little more wall time on batched teachers and narrows the bracket by
``round_size + 1`` per round instead of 2 (with the defaults, 0, 1e-4 … 1 in decades)."""

import math

from jacdistill import Tuner, hookimpl
from jacdistill.options import Interval


class ConstrainedTuner(Tuner):
    name = "constrained"
    defaults = {"tol": 0.05, "lo": 1e-4, "hi": 1.0, "max_trainings": 6, "round_size": 3}
    constraints = {
        "tol": Interval(float, 0, None),
        "lo": Interval(float, 0, None, closed="neither"),
        "hi": Interval(float, 0, None, closed="neither"),
        "max_trainings": Interval(int, 3, None),
        "round_size": Interval(int, 1, None),
    }

    @classmethod
    def check_options(cls, options):
        if not options["lo"] < options["hi"]:
            raise cls.option_error("lo", f"below hi={options['hi']!r}", options["lo"])

    def tune(self, search):
        tol, lo, hi, budget, size = (
            self.options[k] for k in ("tol", "lo", "hi", "max_trainings", "round_size")
        )
        reference, top, best = search.teachers([0.0, hi, lo])
        feasible = lambda trial: trial.val_mse <= (1 + tol) * reference.val_mse
        if feasible(top):
            return top
        if not feasible(best):
            return reference
        low, high = math.log10(lo), math.log10(hi)  # invariant: low feasible, high not
        spent = 3
        while spent < budget:
            n = min(size, budget - spent)
            points = [low + (high - low) * (i + 1) / (n + 1) for i in range(n)]
            trials = search.teachers([10**p for p in points])
            spent += n
            # the largest feasible candidate is the new low, the candidate above it the new high
            passed = [i for i, trial in enumerate(trials) if feasible(trial)]
            if passed:
                best, low = trials[passed[-1]], points[passed[-1]]
            above = passed[-1] + 1 if passed else 0
            if above < n:
                high = points[above]
        return best


@hookimpl
def register_tuners(register):
    register(ConstrainedTuner)
