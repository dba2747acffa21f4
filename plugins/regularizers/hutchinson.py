"""``hutchinson``: random-probe estimate of mean‖J‖²_F, unbiased (``jvp``, ``vjp``) or cheapest (``fd``).

E_v‖J v‖² = ‖J‖²_F for any probe with E[v vᵀ] = I (Rademacher or Gaussian), so the mean over
``probes`` directions is unbiased:
- ``jvp``: directions v in input space, J v by forward mode (closed form for jacdistill's MLP,
  ``torch.func.jvp`` for any other module);
- ``vjp``: directions w in output space, ‖wᵀJ‖² by one backward pass each; exact for a scalar
  output with Rademacher w (w² = 1), the cheap choice for many outputs and few inputs;
- ``fd``: forward difference (f(x + εv) − f(x))/ε = J v + (ε/2)·vᵀ∇²f v + O(ε²), one extra forward
  pass on a batch stacked with the clean one. Biased: its expectation is ‖J‖²_F + O(ε)
  (for a scalar output, ε·E[(∇f·v)(vᵀ∇²f v)] + O(ε²)), vanishing as ``eps`` shrinks.

``rows=ρ < 1`` evaluates the estimate on a random ⌈ρB⌉ rows of each batch only: still unbiased for
the batch mean, at about ρ of the penalty's cost. Probes and rows are drawn from torch's global
generator, which the Distiller seeds.
"""

import math

import torch

from jacdistill import Regularizer, hookimpl
from jacdistill.kernels import analytic
from jacdistill.options import Interval, OneOf
from jacdistill.probes import DISTRIBUTIONS, draw_probes

MODES = ("jvp", "vjp", "fd")


class HutchinsonPenalty(Regularizer):
    """Estimate of mean_b ‖J_f(x_b)‖²_F from ``probes`` random directions per sample."""

    name = "hutchinson"
    defaults = {"probes": 1, "dist": "rademacher", "mode": "jvp", "eps": 1e-3, "rows": 1.0}
    constraints = {
        "probes": Interval(int, 1, None),
        "dist": OneOf(*DISTRIBUTIONS),
        "mode": OneOf(*MODES),
        "eps": Interval(float, 0, None, closed="neither"),
        "rows": Interval(float, 0, 1, closed="right"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.probes, self.dist, self.mode = (self.options[k] for k in ("probes", "dist", "mode"))
        self.eps, self.rows = float(self.options["eps"]), float(self.options["rows"])

    def output_and_penalty(self, model, x):
        if self.rows == 1:
            return self.estimate(model, x, None)
        chosen = torch.randperm(len(x), device=x.device)[: math.ceil(self.rows * len(x))]
        return self.estimate(model, x, chosen)

    def estimate(self, model, x, chosen):
        """(model(x), estimate of mean‖J‖²_F over the rows ``chosen``, or all rows if None)."""
        if self.mode == "fd":  # one forward pass over the clean and the shifted rows together
            sub = x if chosen is None else x[chosen]
            v = draw_probes((self.probes, *sub.shape), self.dist, x)
            out = model(torch.cat([x, (sub + self.eps * v).reshape(-1, x.shape[1])]))
            clean = out[: len(x)] if chosen is None else out[chosen]
            shifted = out[len(x) :].reshape(self.probes, len(sub), -1)
            return out[: len(x)], (shifted - clean).pow(2).sum() / (self.eps**2 * len(sub) * self.probes)
        if chosen is not None:  # the MSE needs every row, the estimate only some
            return model(x), self.estimate(model, x[chosen], None)[1]
        batch = len(x)
        if self.mode == "jvp":
            v = draw_probes((self.probes, *x.shape), self.dist, x)
            if analytic.is_plain_mlp(model):
                out, jv = analytic.output_and_directional(model, x, v)
            else:
                out = model(x)
                jv = torch.stack([torch.func.jvp(model, (x,), (vi,))[1] for vi in v])
            return out, jv.pow(2).sum() / (batch * self.probes)
        x = x.detach().requires_grad_(True)
        out = model(x)
        total = x.new_zeros(())
        for _ in range(self.probes):
            w = draw_probes(out.shape, self.dist, out)
            (grad,) = torch.autograd.grad(out, x, grad_outputs=w, create_graph=True)
            total = total + grad.pow(2).sum()
        return out, total / (batch * self.probes)


@hookimpl
def register_regularizers(register):
    register(HutchinsonPenalty)
