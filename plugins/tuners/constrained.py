"""``constrained``: the largest λ whose teacher stays within ``tol`` (relative) of the λ = 0
teacher's validation MSE, found by bisection in log λ. No student is fitted while searching.
The first three candidates (0, ``lo``, ``hi``) train together; each bisection step trains one."""

import math

from jacdistill import Tuner, hookimpl
from jacdistill.options import Interval


class ConstrainedTuner(Tuner):
    name = "constrained"
    defaults = {"tol": 0.05, "lo": 1e-4, "hi": 1.0, "max_trainings": 6}
    constraints = {
        "tol": Interval(float, 0, None),
        "lo": Interval(float, 0, None, closed="neither"),
        "hi": Interval(float, 0, None, closed="neither"),
        "max_trainings": Interval(int, 3, None),
    }

    @classmethod
    def check_options(cls, options):
        if not options["lo"] < options["hi"]:
            raise cls.option_error("lo", f"below hi={options['hi']!r}", options["lo"])

    def tune(self, search):
        tol, lo, hi, budget = (self.options[k] for k in ("tol", "lo", "hi", "max_trainings"))
        # The first round together: λ = 0 (the reference), the top and the bottom of the range.
        reference, top, best = search.teachers([0.0, hi, lo])
        feasible = lambda trial: trial.val_mse <= (1 + tol) * reference.val_mse
        if feasible(top):
            return top
        if not feasible(best):
            return reference
        low, high = math.log10(lo), math.log10(hi)  # invariant: low feasible, high not
        for _ in range(budget - 3):
            middle = (low + high) / 2
            trial = search.teacher(10**middle)
            if feasible(trial):
                best, low = trial, middle
            else:
                high = middle
        return best


@hookimpl
def register_tuners(register):
    register(ConstrainedTuner)
