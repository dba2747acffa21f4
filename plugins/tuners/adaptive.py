"""``adaptive``: λ found within a single training run.

The run starts at λ = 0 and trains until validation MSE stops improving for ``patience`` epochs;
the median validation MSE of those last ``patience`` epochs is the reference (the typical epoch at
convergence, to which single later epochs compare fairly; the best epoch would be an optimistic,
noise-selected bar). Then λ starts at ``lam0`` and follows a multiplicative dual-ascent
controller on the constraint "validation MSE ≤ (1 + tol)·reference": after each epoch λ grows by
``growth`` while the constraint holds and shrinks by it when it does not, for ``adapt_epochs``
epochs (within the run's ``epochs`` budget). The kept weights are those of the epoch with the
largest λ that met the constraint (the warm-up's best at λ = 0 if none did).
"""

import math
import statistics

from jacdistill import Tuner, hookimpl
from jacdistill.options import Interval
from jacdistill.teacher import Schedule


class ConstraintController(Schedule):
    """The λ schedule of the adaptive tuner: a warm-up at λ = 0, then dual ascent."""

    def __init__(self, tol, lam0, growth, adapt_epochs, patience):
        self.tol, self.lam0, self.growth = tol, lam0, growth
        self.adapt_epochs, self.patience = adapt_epochs, patience
        self.lam, self.reference, self.adapt_from = 0.0, None, None
        self.best, self.best_epoch, self.kept_lam, self.warmup = math.inf, 0, -1.0, []

    def lam_for(self, epoch):
        return self.lam

    def observe(self, epoch, val_mse):
        if self.reference is None:  # warm-up at λ = 0, early stopping as usual
            self.warmup.append(val_mse)
            keep = val_mse < self.best
            if keep:
                self.best, self.best_epoch = val_mse, epoch
            if epoch - self.best_epoch >= self.patience:
                self.reference = statistics.median(self.warmup[-self.patience :])
                self.adapt_from, self.lam = epoch, self.lam0
            return keep, False
        feasible = val_mse <= (1 + self.tol) * self.reference
        keep = feasible and self.lam >= self.kept_lam
        if keep:
            self.kept_lam = self.lam
        self.lam = self.lam * self.growth if feasible else self.lam / self.growth
        return keep, epoch - self.adapt_from >= self.adapt_epochs


class AdaptiveTuner(Tuner):
    name = "adaptive"
    defaults = {"tol": 0.05, "lam0": 1e-4, "growth": 1.5, "adapt_epochs": 100, "patience": 40}
    constraints = {
        "tol": Interval(float, 0, None),
        "lam0": Interval(float, 0, None, closed="neither"),
        "growth": Interval(float, 1, None, closed="neither"),
        "adapt_epochs": Interval(int, 1, None),
        "patience": Interval(int, 1, None),
    }

    def tune(self, search):
        trial = search.scheduled(ConstraintController(*(self.options[k] for k in self.defaults)))
        trial.extra["lam_per_epoch"] = [float(f"{h['lam']:.6g}") for h in trial.training.history]
        return trial


@hookimpl
def register_tuners(register):
    register(AdaptiveTuner)
