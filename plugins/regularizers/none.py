"""``none``: no penalty; the standard-distillation baseline."""

import torch

from jacdistill import Regularizer, hookimpl


class NoPenalty(Regularizer):
    """Zero penalty: training is plain MSE whatever λ is."""

    name = "none"

    def handles_stacks(self):
        return True

    def output_and_penalty(self, model, x):
        return model(x), torch.zeros(x.shape[:-2], device=x.device)

    def loss(self, model, x, y, lam):
        return super().loss(model, x, y, 0.0)


@hookimpl
def register_regularizers(register):
    register(NoPenalty)
