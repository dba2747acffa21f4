"""``jacobian``: exact mean squared Frobenius norm of the input Jacobian, mean_b ‖∂f/∂x(x_b)‖²_F.

Backends (``--backend``):
- ``autograd``: any nn.Module; one double-backward pass per output column;
- ``analytic``: jacdistill's MLP; the Jacobian in closed form, and a training loss whose parameter
  gradients are computed in closed form too (:mod:`jacdistill.kernels.analytic`);
- ``auto``: ``analytic`` where it applies, else ``autograd``.
"""
import torch

from jacdistill import JacdistillError, Regularizer, hookimpl
from jacdistill.kernels import analytic

BACKENDS = ("auto", "autograd", "analytic")


def output_and_jacobian_norm(model, x):
    """(f(x), mean_b ‖J_f(x_b)‖²_F) for any module whose rows are independent samples.

    One backward pass per output column (each row's output depends only on its own input, so the
    gradient of the column sum is the stack of per-sample gradients); ``create_graph=True`` keeps
    the result differentiable in the weights (double backward).
    """
    x = x.detach().requires_grad_(True)
    out = model(x)
    cols = out.reshape(len(x), -1)
    total = x.new_zeros(())
    for k in range(cols.shape[1]):
        (grad,) = torch.autograd.grad(cols[:, k].sum(), x, create_graph=True)
        total = total + grad.pow(2).sum()
    return out, total / len(x)


class JacobianPenalty(Regularizer):
    """Exact Jacobian penalty, scalar or vector output."""

    name = "jacobian"
    defaults = {"backend": "auto"}

    def __init__(self, **options):
        super().__init__(**options)
        self.backend = self.options["backend"]
        if self.backend not in BACKENDS:
            raise JacdistillError(f"jacobian: unknown backend '{self.backend}'; known: {', '.join(BACKENDS)}")

    def backend_for(self, model) -> str:
        """The backend that runs for ``model``: auto resolves to the fastest one that applies."""
        if analytic.is_plain_mlp(model):
            return "analytic" if self.backend == "auto" else self.backend
        if self.backend == "analytic":
            raise JacdistillError(f"jacobian: backend 'analytic' needs jacdistill's MLP, "
                                  f"not {type(model).__name__}; use --backend autograd")
        return "autograd"

    def output_and_penalty(self, model, x):
        if self.backend_for(model) == "analytic":
            out, jac = analytic.output_and_jacobian(model, x)
            return out, jac.pow(2).sum() / len(x)
        return output_and_jacobian_norm(model, x)

    def penalty(self, model, x):
        return self.output_and_penalty(model, x)[1]

    def loss(self, model, x, y, lam):
        if lam and self.backend_for(model) == "analytic":
            return analytic.fused_loss(model, x, y, lam)
        return super().loss(model, x, y, lam)


@hookimpl
def register_regularizers(register):
    register(JacobianPenalty)
