"""``lipschitz``: the square of a Lipschitz constant of the teacher, global or on the batch.

Both modes penalise L², a squared slope like the ``jacobian`` penalty's mean‖J‖²_F (for a scalar
output L is a bound on, or the largest of, the gradient norms whose squares that penalty averages),
so λ keeps its scale from one penalty to the other.

- ``spectral`` (the default): L = Π_l c·σ(W_l) · σ(W_o), the global bound of jacdistill's MLP (in
  the Euclidean norms): each layer's largest singular value σ, times c, the activation's largest
  slope (1 for tanh and ReLU; SiLU's slope peaks at about 1.0998, so its c keeps L a true bound).
  σ comes from power iteration, as in spectral normalisation: ``iterations`` steps per call from a
  vector kept per weight matrix, so the estimate converges over training; σ = uᵀWv with u and v
  held constant, whose gradient is u vᵀ = ∂σ/∂W at convergence. The default because it is what
  Lipschitz regularisation usually means (a certificate for every input, not only the data's), it
  adds to the ``jacobian`` penalty what a batch cannot show, and it costs a few matrix-vector
  products per layer and step whatever the batch size, with no double backward. Only for
  jacdistill's MLP and MLPStack (the bound reads the weights); any other module is a user error.
- ``local``: L = smooth maximum over the batch of ‖∂f/∂x(x_b)‖₂ (the gradient's norm for a scalar
  output, the Jacobian's largest singular value for several): τ·(logsumexp(s_b/τ) − log B) with
  τ = ``temperature``, which lies between max_b s_b − τ·log B and max_b s_b and tends to the mean of
  s_b as τ grows. τ is in the units of the slopes (of order 1 on standardized data), so the default
  0.1 weighs the samples within a few tenths of the steepest. Differentiable in the weights: the
  closed-form Jacobian for jacdistill's MLP and MLPStack, one double-backward pass per output column
  for any other module.

Stacks: for an MLPStack (x k×B×d) both modes give one penalty per member, member i's what the plain
MLP with its weights gets. When members leave a stack, each member left resumes power iteration
from the kept vector that suits it best (largest ‖W v‖), its own among them.
"""

import math

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

from jacdistill import JacdistillError, Regularizer, hookimpl
from jacdistill.kernels import analytic
from jacdistill.options import Interval, OneOf

MODES = ("spectral", "local")
COLD_START = 15  # extra power iterations for a fresh vector, as torch's spectral_norm runs at setup


def silu_slope_max() -> float:
    """max_a SiLU'(a): SiLU'' = σ(1−σ)(2 + a(1−2σ)) vanishes once, where 2 + a(1−2σ(a)) = 0."""
    sig = lambda a: 1 / (1 + math.exp(-a))
    low, high = 0.0, 10.0  # the root's sign change: +2 at 0, below 0 at 10
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if 2 + mid * (1 - 2 * sig(mid)) > 0 else (low, mid)
    return sig(low) * (1 + low * (1 - sig(low)))


SLOPE_BOUNDS = {"tanh": 1.0, "relu": 1.0, "silu": silu_slope_max()}


class LipschitzPenalty(Regularizer):
    """L² with L the global spectral bound or the batch's smooth-max local slope (see above)."""

    name = "lipschitz"
    defaults = {"mode": "spectral", "iterations": 1, "temperature": 0.1}
    constraints = {
        "mode": OneOf(*MODES),
        "iterations": Interval(int, 1, None),
        "temperature": Interval(float, 0, None, closed="neither"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.mode, self.iterations = self.options["mode"], self.options["iterations"]
        self.temperature = float(self.options["temperature"])
        self._vectors = WeakIdKeyDictionary()  # weight -> its right singular vector estimate(s)

    def __getstate__(self):
        # the vectors are a training-time cache keyed by live parameters: not part of the plugin
        return {k: v for k, v in self.__dict__.items() if k != "_vectors"}

    def __setstate__(self, state):
        self.__dict__.update(state, _vectors=WeakIdKeyDictionary())

    def handles_stacks(self):
        return True

    def output_and_penalty(self, model, x):
        if self.mode == "local":
            return self.local(model, x)
        if not (analytic.has_closed_form(model) and model.activation in SLOPE_BOUNDS):
            raise JacdistillError(
                f"lipschitz: mode 'spectral' needs jacdistill's MLP or MLPStack, "
                f"not {type(model).__name__}; use --reg-opt mode=local"
            )
        return model(x), self.spectral_bound(model).square()

    def spectral_bound(self, model) -> torch.Tensor:
        """Π_l c·σ(W_l) · σ(W_o): a scalar, or one per member of a stack."""
        activation, weights, _, w_out, _ = analytic.mlp_parts(model)
        bound = self.sigma(w_out)
        for w in weights:
            bound = bound * (SLOPE_BOUNDS[activation] * self.sigma(w))
        return bound

    def sigma(self, w: torch.Tensor) -> torch.Tensor:
        """Largest singular value of W (…×H×H'), differentiable as uᵀWv with u, v constant."""
        v = self._start(w)
        with torch.no_grad():
            for _ in range(self.iterations):
                u, v = power_step(w, v)
        self._vectors[w] = v
        return (u.unsqueeze(-2) @ w @ v.unsqueeze(-1)).reshape(w.shape[:-2])

    def _start(self, w: torch.Tensor) -> torch.Tensor:
        """The vector to iterate from: the kept one; after members left a stack, for each member
        the kept vector with the largest ‖W v‖; else a fixed draw (the same for every member, so
        a stack's member starts where the plain MLP does), advanced COLD_START iterations."""
        kept = self._vectors.get(w)
        with torch.no_grad():
            if kept is not None and kept.shape[-1] == w.shape[-1]:
                kept = kept.to(w)
                if kept.shape == w.shape[:-2] + w.shape[-1:]:
                    return kept
                if w.ndim == 3 and kept.ndim == 2:  # members left: ‖W_m v_n‖ for every pair
                    gains = torch.einsum("mij,nj->mni", w, kept).norm(dim=-1)
                    return kept[gains.argmax(dim=1)]
            draw = torch.randn(w.shape[-1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            v = F.normalize(draw.to(w), dim=0).expand(*w.shape[:-2], -1).clone()
            for _ in range(COLD_START):
                v = power_step(w, v)[1]
        return v

    def local(self, model, x):
        """(f(x), smooth max_b ‖J(x_b)‖₂ squared), per member for a stack."""
        out, jac = input_jacobian(model, x)  # …×k_out×B×d
        if jac.shape[-3] == 1:
            slopes = torch.linalg.vector_norm(jac.squeeze(-3), dim=-1)
        else:
            slopes = torch.linalg.matrix_norm(jac.movedim(-3, -2), ord=2)  # …×B
        tau, batch = self.temperature, slopes.shape[-1]
        smooth_max = tau * (torch.logsumexp(slopes / tau, dim=-1) - math.log(batch))
        return out, smooth_max.square()


def power_step(w, v):
    """One power iteration for W (…×H×H') from v (…×H'): u = Wv/‖Wv‖, then v = Wᵀu/‖Wᵀu‖."""
    u = F.normalize((w @ v.unsqueeze(-1)).squeeze(-1), dim=-1)
    return u, F.normalize((u.unsqueeze(-2) @ w).squeeze(-2), dim=-1)


def input_jacobian(model, x):
    """(f(x), J) with J …×k_out×B×d, differentiable in the weights: closed form for jacdistill's
    MLP and MLPStack, else one backward pass per output column (each row's output depends on its
    own input only, so the column sum's gradient holds every row's)."""
    if analytic.has_closed_form(model):
        return analytic.output_and_jacobian(model, x)
    x = x.detach().requires_grad_(True)
    out = model(x)
    cols = out.reshape(*x.shape[:-1], -1)
    rows = [torch.autograd.grad(cols[..., k].sum(), x, create_graph=True)[0] for k in range(cols.shape[-1])]
    return out, torch.stack(rows, dim=-3)


@hookimpl
def register_regularizers(register):
    register(LipschitzPenalty)
