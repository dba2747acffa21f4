"""``hessian``: mean_b ‖∇²ₓf(x_b)‖²_F, penalising curvature rather than slope.

Exact while the input dimension d is at most ``exact_max_dim`` (default 16): the d rows of each
Hessian come from one batched backward pass over the input gradient. Above it, the Hutchinson
estimate E_v‖H v‖² with ``probes`` random directions (E[v vᵀ] = I), one Hessian-vector product each.
Both stay differentiable in the weights (third-order autograd). Vector outputs sum over outputs.
Probes come from each teacher's own random stream (``jacdistill.probes``).
For ReLU networks the Hessian vanishes almost everywhere, so the penalty is zero.
"""

import torch

from jacdistill import Regularizer, hookimpl
from jacdistill.options import Interval, OneOf
from jacdistill.probes import DISTRIBUTIONS, draw_probes, squared_sum


class HessianPenalty(Regularizer):
    name = "hessian"
    defaults = {"exact_max_dim": 16, "probes": 1, "dist": "rademacher"}
    constraints = {
        "exact_max_dim": Interval(int, 0, None),
        "probes": Interval(int, 1, None),
        "dist": OneOf(*DISTRIBUTIONS),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.exact_max_dim, self.probes, self.dist = (self.options[k] for k in self.defaults)

    def is_exact(self, n_inputs: int) -> bool:
        return n_inputs <= self.exact_max_dim

    def handles_stacks(self):
        return True

    def output_and_penalty(self, model, x):
        """For a stack (x: k×B×d) one penalty per member: the members share no weights, so the
        gradient of the sum over members is each member's own."""
        members = 1 if x.ndim == 3 else None  # the axis of a stack's members in (P, *x.shape)
        x = x.detach().requires_grad_(True)
        out = model(x)
        cols = out.reshape(*x.shape[:-1], -1)  # one column per output, also for a (B,)-shaped output
        batch, dim = x.shape[-2:]
        total = 0
        for k in range(cols.shape[-1]):
            (grad,) = torch.autograd.grad(cols[..., k].sum(), x, create_graph=True)
            if self.is_exact(dim):  # row i of every sample's Hessian: ∂(Σ_b ∂f/∂x_i)/∂x
                eye = torch.eye(dim, dtype=x.dtype, device=x.device)
                directions = eye.reshape(dim, *[1] * (x.ndim - 1), dim).expand(dim, *x.shape)
                scale = 1.0
            else:
                directions = draw_probes((self.probes, *x.shape), self.dist, x, members)
                scale = 1.0 / self.probes
            (hv,) = torch.autograd.grad(
                grad, x, grad_outputs=directions, create_graph=True, is_grads_batched=True
            )
            total = total + scale * squared_sum(hv, members)
        return out, total / batch


@hookimpl
def register_regularizers(register):
    register(HessianPenalty)
