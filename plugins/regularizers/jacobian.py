"""``jacobian``: exact mean squared Frobenius norm of the input Jacobian, mean_b ‖∂f/∂x(x_b)‖²_F.

Backends (``--backend``):
- ``autograd``: any nn.Module; one double-backward pass per output column;
- ``analytic``: jacdistill's MLP or MLPStack; the Jacobian in closed form, and a training loss whose parameter
  gradients are computed in closed form too (:mod:`jacdistill.kernels.analytic`);
- ``triton``: jacdistill's MLP on a CUDA GPU; fused Triton kernels (:mod:`jacdistill.kernels.jacnorm`)
  that form the loss and every parameter gradient in one launch per batch (also runs on CPU under
  the Triton interpreter, ``TRITON_INTERPRET=1`` set before triton is imported: slow, for tests);
- ``auto``: ``triton`` for a float32 MLP on a CUDA input where the kernels run, else ``analytic``
  where it applies, else ``autograd``.
"""

import warnings

import torch

from jacdistill import JacdistillError, Regularizer, hookimpl
from jacdistill.kernels import analytic
from jacdistill.options import OneOf

BACKENDS = ("auto", "autograd", "analytic")
# Backends that need a GPU (or the Triton interpreter). Kept apart from BACKENDS, which the
# regularizer tests run on every machine for every module.
GPU_BACKENDS = ("triton",)
ALL_BACKENDS = BACKENDS + GPU_BACKENDS


def output_and_jacobian_norm(model, x):
    """(f(x), mean_b ‖J_f(x_b)‖²_F) for any module whose rows are independent samples; for an
    MLPStack (x: k×B×d) one mean per member.

    One backward pass per output column (each row's output depends only on its own input, so the
    gradient of the column sum is the stack of per-sample gradients); ``create_graph=True`` keeps
    the result differentiable in the weights (double backward).
    """
    x = x.detach().requires_grad_(True)
    out = model(x)
    cols = out.reshape(*x.shape[:-1], -1)
    total = x.new_zeros(x.shape[:-2])
    for k in range(cols.shape[-1]):
        (grad,) = torch.autograd.grad(cols[..., k].sum(), x, create_graph=True)
        total = total + grad.pow(2).sum(dim=(-2, -1))
    return out, total / x.shape[-2]


class JacobianPenalty(Regularizer):
    """Exact Jacobian penalty, scalar or vector output."""

    name = "jacobian"
    defaults = {"backend": "auto"}
    constraints = {"backend": OneOf(*ALL_BACKENDS)}

    def __init__(self, **options):
        super().__init__(**options)
        self.backend = self.options["backend"]
        self._triton_failed = False  # auto: the kernels raised once; analytic from then on

    def check_device(self, device):
        if self.backend == "triton":
            from jacdistill.kernels import jacnorm  # imports triton: only when asked for

            reason = jacnorm.available(device)
            if reason:
                raise JacdistillError(f"jacobian: backend 'triton' needs a CUDA GPU and triton: {reason}")

    def backend_for(self, model, x=None) -> str:
        """The backend that runs for ``model`` (on inputs like ``x``): auto resolves to the fastest
        one that applies; an explicit backend that cannot run raises JacdistillError."""
        if analytic.is_plain_mlp(model):
            if self.backend == "auto":
                usable = not self._triton_failed and triton_reason(model, x, auto=True) is None
                return "triton" if usable else "analytic"
            if self.backend == "triton":
                reason = triton_reason(model, x)
                if reason:
                    raise JacdistillError(reason)
            return self.backend
        if analytic.is_mlp_stack(model) and self.backend in ("auto", "analytic"):
            return "analytic"  # the Triton kernels take one plain MLP (see handles_stacks)
        if self.backend in ("analytic", "triton"):
            raise JacdistillError(
                f"jacobian: backend '{self.backend}' needs jacdistill's MLP, "
                f"not {type(model).__name__}; use --backend autograd"
            )
        return "autograd"

    def _run_triton(self, compute):
        """``compute()`` with the Triton kernels; under ``auto`` a failure (say a compiler that
        rejects the kernels on this GPU) warns once and hands over to ``analytic`` for good."""
        if self.backend == "triton":
            return compute()
        try:
            return compute()
        except Exception as exc:  # noqa: BLE001 - auto must never do worse than analytic
            self._triton_failed = True
            warnings.warn(
                f"jacobian: the triton backend failed ({type(exc).__name__}: {exc}); "
                f"auto uses analytic from now on",
                RuntimeWarning,
                stacklevel=3,
            )
            return None

    def output_and_penalty(self, model, x):
        backend = self.backend_for(model, x)
        if backend == "triton":
            from jacdistill.kernels import jacnorm

            result = self._run_triton(lambda: jacnorm.output_and_sqnorms(model, x, grad=True))
            if result is not None:
                return result[0], result[1].sum() / len(x)
            backend = "analytic"
        if backend == "analytic":
            out, jac = analytic.output_and_jacobian(model, x)
            return out, jac.pow(2).sum(dim=(-3, -2, -1)) / x.shape[-2]  # a scalar, or one per member
        return output_and_jacobian_norm(model, x)

    def handles_stacks(self):
        return self.backend != "triton"  # the Triton kernels take one plain MLP

    def loss(self, model, x, y, lam):
        if bool(torch.as_tensor(lam).any()):
            backend = self.backend_for(model, x)
            if backend == "triton":
                from jacdistill.kernels import jacnorm

                loss = self._run_triton(lambda: jacnorm.fused_loss(model, x, y, lam))
                if loss is not None:
                    return loss
                backend = "analytic"
            if backend == "analytic":
                return analytic.fused_loss(model, x, y, lam)
        return super().loss(model, x, y, lam)


def triton_reason(model, x=None, auto=False):
    """None when the Triton kernels can run for ``model`` on inputs like ``x``, else a one-line
    JacdistillError message. ``auto``: also require a float32 CUDA input (on CPU the interpreter
    is far slower than ``analytic``), and never import triton for a CPU input."""
    if x is None:
        x = next(model.parameters(), None)
    device = x.device if x is not None else None
    if auto and (device is None or device.type != "cuda" or x.dtype != torch.float32):
        return "auto uses triton only for float32 inputs on a CUDA device"
    from jacdistill.kernels import jacnorm  # imports triton: only now, never at plugin load

    reason = jacnorm.available(device if device is not None else "cpu")
    if reason:
        return f"jacobian: backend 'triton' needs a CUDA GPU and triton: {reason}"
    reason = jacnorm.unsupported(model, x)
    if reason:
        return f"jacobian: backend 'triton' cannot run this model: {reason}; use --backend analytic"
    return None


@hookimpl
def register_regularizers(register):
    register(JacobianPenalty)
