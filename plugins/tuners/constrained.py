"""``constrained``: the largest λ whose teacher stays within ``tol`` (relative) of the λ = 0
teacher's validation MSE, found by bisection in log λ. No student is fitted while searching."""
import math

from jacdistill import JacdistillError, Tuner, hookimpl


class ConstrainedTuner(Tuner):
    name = "constrained"
    defaults = {"tol": 0.05, "lo": 1e-4, "hi": 1.0, "max_trainings": 6}

    def __init__(self, seed=0, **options):
        super().__init__(seed, **options)
        tol, lo, hi, budget = (self.options[k] for k in ("tol", "lo", "hi", "max_trainings"))
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise JacdistillError(f"constrained: tol must be a number >= 0, got {tol!r}")
        if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and 0 < lo < hi < math.inf):
            raise JacdistillError(f"constrained: need 0 < lo < hi, got lo={lo!r} hi={hi!r}")
        if not (isinstance(budget, int) and budget >= 3):
            raise JacdistillError(f"constrained: max_trainings must be an integer >= 3, got {budget!r}")

    def tune(self, search):
        tol, lo, hi, budget = (self.options[k] for k in ("tol", "lo", "hi", "max_trainings"))
        reference = search.teacher(0.0)
        feasible = lambda trial: trial.val_mse <= (1 + tol) * reference.val_mse
        top = search.teacher(hi)
        if feasible(top):
            return top
        best = search.teacher(lo)
        if not feasible(best):
            return reference
        low, high = math.log10(lo), math.log10(hi)  # invariant: low feasible, high not
        for _ in range(budget - 3):
            middle = (low + high) / 2
            trial = search.teacher(10 ** middle)
            if feasible(trial):
                best, low = trial, middle
            else:
                high = middle
        return best


@hookimpl
def register_tuners(register):
    register(ConstrainedTuner)
