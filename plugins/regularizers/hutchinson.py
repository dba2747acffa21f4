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
the batch mean, at about ρ of the penalty's cost. Probes and rows are drawn from each teacher's own
random stream (``jacdistill.probes``), so teachers trained together as a stack draw what they
would draw alone.
"""

import math

import torch

from jacdistill import Regularizer, hookimpl
from jacdistill.kernels import analytic
from jacdistill.options import Interval, OneOf
from jacdistill.probes import DISTRIBUTIONS, choose_rows, draw_probes, squared_sum

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

    def handles_stacks(self):
        return True

    def output_and_penalty(self, model, x):
        if self.rows == 1:
            return self.estimate(model, x, None)
        members = len(x) if x.ndim == 3 else None  # a stack's rows are k×B×d
        chosen = choose_rows(x.shape[-2], math.ceil(self.rows * x.shape[-2]), x, members)
        return self.estimate(model, x, chosen)

    def estimate(self, model, x, chosen):
        """(model(x), estimate of mean‖J‖²_F over the rows ``chosen``, or all rows if None); for a
        stack (x: k×B×d, ``chosen``: k×m), one estimate per member."""
        stacked = x.ndim == 3
        members = 1 if stacked else None  # the axis of the members in a draw shaped (P, *x.shape)
        if self.mode == "fd":  # one forward pass over the clean and the shifted rows together
            sub = x if chosen is None else _rows(x, chosen)
            rows = sub.shape[-2]
            v = draw_probes((self.probes, *sub.shape), self.dist, x, members)
            shifted_rows = (sub + self.eps * v).movedim(0, -3).flatten(-3, -2)  # (k×)(P·m)×d
            out = model(torch.cat([x, shifted_rows], dim=-2))
            clean = out[..., : x.shape[-2], :]
            sub_clean = clean if chosen is None else _rows(clean, chosen)
            shifted = out[..., x.shape[-2] :, :].unflatten(-2, (self.probes, rows)).movedim(-3, 0)
            return clean, squared_sum(shifted - sub_clean, members) / (self.eps**2 * rows * self.probes)
        if chosen is not None:  # the MSE needs every row, the estimate only some
            return model(x), self.estimate(model, _rows(x, chosen), None)[1]
        rows = x.shape[-2]
        if self.mode == "jvp":
            v = draw_probes((self.probes, *x.shape), self.dist, x, members)
            if analytic.has_closed_form(model):
                out, jv = analytic.output_and_directional(model, x, v)
            else:
                out = model(x)
                jv = torch.stack([torch.func.jvp(model, (x,), (vi,))[1] for vi in v])
            return out, squared_sum(jv, members) / (rows * self.probes)
        x = x.detach().requires_grad_(True)
        out = model(x)
        total = 0
        for _ in range(self.probes):
            w = draw_probes(out.shape, self.dist, out, 0 if stacked else None)
            (grad,) = torch.autograd.grad(out, x, grad_outputs=w, create_graph=True)
            total = total + squared_sum(grad, 0 if stacked else None)
        return out, total / (rows * self.probes)


def _rows(x, chosen):
    """The rows ``chosen`` of x: x[chosen] for B×d, member by member for a stack (k×B×d, k×m)."""
    if x.ndim == 2:
        return x[chosen]
    return x.gather(1, chosen.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


@hookimpl
def register_regularizers(register):
    register(HutchinsonPenalty)
