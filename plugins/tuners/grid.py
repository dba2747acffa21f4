"""``grid``: the paper's protocol — a teacher and a student for every λ of a grid, pick by the
student's validation R². With ``restarts``, candidate i's student gets the i-th restart seed (as the
sweep's control seeds its candidates), so the choice is among independent student runs too."""
import math

from jacdistill import JacdistillError, Tuner, hookimpl
from jacdistill.tuning import restart_seed


def score(value) -> float:
    """Validation R² for ranking; a formula that blows up (NaN) ranks last."""
    return -math.inf if value is None or math.isnan(value) else value


class GridTuner(Tuner):
    name = "grid"
    defaults = {"grid": (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), "restarts": False}

    def __init__(self, seed=0, **options):
        super().__init__(seed, **options)
        grid = self.options["grid"]
        if (not isinstance(grid, (list, tuple)) or not grid
                or not all(isinstance(v, (int, float)) and 0 <= v < math.inf for v in grid)):
            raise JacdistillError(f"grid: grid must be a list of numbers >= 0 such as [0,1e-3,1e-1], got {grid!r}")
        if not isinstance(self.options["restarts"], bool):
            raise JacdistillError(f"grid: restarts must be true or false, got {self.options['restarts']!r}")

    def tune(self, search):
        trials = []
        for i, lam in enumerate(self.options["grid"]):
            trial = search.teacher(lam)
            search.student(trial, restart_seed(self.seed, i) if self.options["restarts"] else None)
            trials.append(trial)
        return max(trials, key=lambda t: score(t.student_r2_val))


@hookimpl
def register_tuners(register):
    register(GridTuner)
