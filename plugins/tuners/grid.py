"""``grid``: the paper's protocol — a teacher and a student for every λ of a grid, pick by the
student's validation R². With ``restarts``, candidate i's student gets the i-th restart seed (as the
sweep's control seeds its candidates), so the choice is among independent student runs too."""

from jacdistill import Tuner, hookimpl
from jacdistill.metrics import rank_score
from jacdistill.options import Boolean, Interval, ListOf
from jacdistill.search import restart_seed


class GridTuner(Tuner):
    name = "grid"
    defaults = {"grid": (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), "restarts": False}
    constraints = {"grid": ListOf(Interval(float, 0, None)), "restarts": Boolean}

    def tune(self, search):
        trials = search.teachers(self.options["grid"])
        seeds = [restart_seed(self.seed, i) for i in range(len(trials))] if self.options["restarts"] else None
        search.student_r2s(trials, seeds)
        return max(trials, key=lambda t: rank_score(t.student_r2_val))


@hookimpl
def register_tuners(register):
    register(GridTuner)
