"""The exact Jacobian penalty against an independent torch.func reference, in float64.

The reference computes every per-sample Jacobian with ``vmap(jacrev(...))`` over a functional call
of the module, so it shares no code with ``output_and_jacobian_norm`` (one backward pass per output
column). Values and every parameter gradient of the penalty (double backward) must agree to
float64 round-off.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from jacdistill import JacdistillError
from jacdistill.contracts import Regularizer
from jacdistill.plugins.regularizers import jacobian as jacobian_module
from jacdistill.plugins.regularizers.jacobian import JacobianPenalty, output_and_jacobian_norm
from jacdistill.plugins.regularizers.none import NoPenalty
from jacdistill.registry import registry
from jacdistill.teacher import MLP

RTOL, ATOL = 1e-10, 1e-12
BATCH = 7

# The jacobian plugin may offer several backends (autograd for any module, closed forms for
# jacdistill's MLP); every one of them must agree with the reference.
MLP_BACKENDS = list(getattr(jacobian_module, "BACKENDS", None) or [None])
GENERIC_BACKENDS = [b for b in MLP_BACKENDS if b != "analytic"]


def jacobian_penalty(backend):
    return JacobianPenalty() if backend is None else JacobianPenalty(backend=backend)


def reference_penalty(model: nn.Module, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """mean_b ||J_f(x_b)||_F^2 from per-sample Jacobians (vmap over jacrev of a single-row call)."""

    def single(p, row):
        return functional_call(model, p, (row.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(single, argnums=1), in_dims=(None, 0))(params, x)  # B x k x d
    assert jac.shape[0] == len(x) and jac.shape[-1] == x.shape[1]
    return jac.pow(2).sum() / len(x)


def reference_output(model, x, params):
    return functional_call(model, params, (x,))


def named_params(model):
    return {name: p for name, p in model.named_parameters()}


def assert_close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL)


def check_penalty_and_gradients(model: nn.Module, x: torch.Tensor, regularizer: Regularizer):
    params = named_params(model)
    names = list(params)
    got = regularizer.penalty(model, x)
    assert got.ndim == 0 and got.dtype == torch.float64
    want = reference_penalty(model, x, params)
    assert_close(got, want)
    # the penalty is not trivially zero for these inputs (otherwise the check would be vacuous)
    assert want.item() > 1e-6

    got_grads = torch.autograd.grad(got, [params[n] for n in names], allow_unused=True)
    want_grads = torch.autograd.grad(want, [params[n] for n in names], allow_unused=True)
    nonzero = 0
    for name, g, w in zip(names, got_grads, want_grads):
        g = torch.zeros_like(params[name]) if g is None else g
        w = torch.zeros_like(params[name]) if w is None else w
        torch.testing.assert_close(g, w, rtol=RTOL, atol=ATOL, msg=lambda m, n=name: f"{n}: {m}")
        nonzero += int(w.abs().max().item() > 0)
    # at least the weights carry a gradient of the penalty
    assert nonzero >= len([n for n in names if n.endswith("weight")])
    # the helper's first output is the model's output on x
    out, value = output_and_jacobian_norm(model, x)
    assert_close(out, reference_output(model, x, params))
    assert_close(value, want)


def make_mlp(d_in, widths, d_out, activation, seed):
    torch.manual_seed(seed)
    return MLP(d_in, widths, d_out, activation).double()


def inputs(d, seed, batch=BATCH):
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(batch, d, generator=g, dtype=torch.float64) * 1.5


@pytest.mark.parametrize("activation", ["tanh", "silu", "relu"])
@pytest.mark.parametrize("widths", [(3,), (8, 8), (5, 7, 4)])
@pytest.mark.parametrize("d_out", [1, 3])
@pytest.mark.parametrize("backend", MLP_BACKENDS)
def test_jacobian_penalty_matches_torch_func_reference_for_mlps(activation, widths, d_out, backend):
    seed = 100 * len(widths) + 10 * sum(widths) + d_out + {"tanh": 1, "silu": 2, "relu": 3}[activation]
    d_in = 4
    model = make_mlp(d_in, widths, d_out, activation, seed)
    check_penalty_and_gradients(model, inputs(d_in, seed), jacobian_penalty(backend))


class Wiggle(nn.Module):
    """A parametrised elementwise nonlinearity that is no standard activation: a*x*tanh(x) + sin(b*x)."""

    def __init__(self, width):
        super().__init__()
        self.a = nn.Parameter(torch.linspace(0.5, 1.5, width))
        self.b = nn.Parameter(torch.linspace(-1.0, 2.0, width))

    def forward(self, x):
        return self.a * x * torch.tanh(x) + torch.sin(self.b * x)


class Pairwise(nn.Module):
    """Products of feature pairs concatenated to the input: a non-additive, row-wise map."""

    def forward(self, x):
        return torch.cat([x, x[:, :-1] * x[:, 1:]], dim=1)


def generic_module(d_in, d_out):
    torch.manual_seed(5)
    return nn.Sequential(
        Pairwise(),
        nn.Linear(2 * d_in - 1, 6),
        Wiggle(6),
        nn.LayerNorm(6),
        nn.Linear(6, 5),
        nn.Softplus(),
        nn.Linear(5, d_out),
    ).double()


class SkipMLP(MLP):
    """An MLP subclass with its own forward (a skip connection): closed forms for MLP do not apply."""

    def forward(self, x):
        return super().forward(x) + x[:, :1] * x[:, 1:2]


@pytest.mark.parametrize("d_out", [1, 2])
@pytest.mark.parametrize("backend", GENERIC_BACKENDS)
def test_jacobian_penalty_matches_reference_for_generic_module(d_out, backend):
    d_in = 3
    check_penalty_and_gradients(generic_module(d_in, d_out), inputs(d_in, 5), jacobian_penalty(backend))


@pytest.mark.parametrize("backend", GENERIC_BACKENDS)
def test_jacobian_penalty_matches_reference_for_mlp_subclass_with_own_forward(backend):
    torch.manual_seed(11)
    model = SkipMLP(3, (6, 4), 1, "tanh").double()
    check_penalty_and_gradients(model, inputs(3, 11), jacobian_penalty(backend))


@pytest.mark.skipif("analytic" not in MLP_BACKENDS, reason="jacobian has no analytic backend")
def test_analytic_backend_refuses_other_modules():
    x = inputs(3, 0)
    for model in (generic_module(3, 1), SkipMLP(3, (4,), 1, "silu").double()):
        with pytest.raises(JacdistillError, match="analytic"):
            JacobianPenalty(backend="analytic").penalty(model, x)


@pytest.mark.skipif(MLP_BACKENDS == [None], reason="jacobian has no backends")
def test_unknown_backend_is_rejected():
    with pytest.raises(JacdistillError, match="no_such_backend"):
        JacobianPenalty(backend="no_such_backend")


@pytest.mark.parametrize("backend", MLP_BACKENDS)
def test_jacobian_penalty_of_a_linear_mlp_matches_closed_form(backend):
    """relu with all pre-activations positive is linear: ||J||_F^2 = ||W_o W_1||_F^2 on every row."""
    torch.manual_seed(0)
    model = MLP(3, (4,), 2, "relu").double()
    with torch.no_grad():
        model.hidden[0].weight.abs_()
        model.hidden[0].bias.fill_(0.1)
    x = inputs(3, 0).abs()
    value = jacobian_penalty(backend).penalty(model, x)
    assert_close(value, (model.out.weight @ model.hidden[0].weight).pow(2).sum())


def test_jacobian_penalty_of_a_linear_map_is_its_frobenius_norm():
    """Closed form: for f(x) = W x + b, ||J||_F^2 = ||W||_F^2 for every row, and dR/dW = 2W."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x = inputs(4, 0)
    value = JacobianPenalty().penalty(model, x)
    assert_close(value, model.weight.pow(2).sum())
    grad_w, grad_b = torch.autograd.grad(value, [model.weight, model.bias], allow_unused=True)
    assert_close(grad_w, 2 * model.weight)
    assert grad_b is None or torch.count_nonzero(grad_b) == 0


@pytest.mark.parametrize("backend", MLP_BACKENDS)
def test_penalty_is_a_mean_over_rows_not_a_sum(backend):
    model = make_mlp(3, (5,), 1, "tanh", 1)
    x = inputs(3, 1)
    reg = jacobian_penalty(backend)
    per_row = torch.stack([reg.penalty(model, x[i : i + 1]) for i in range(len(x))])
    assert_close(reg.penalty(model, x), per_row.mean())
    # doubling the batch with the same rows leaves the mean unchanged
    assert_close(reg.penalty(model, torch.cat([x, x])), per_row.mean())


@pytest.mark.parametrize("backend", MLP_BACKENDS)
def test_penalty_does_not_touch_the_callers_input(backend):
    model = make_mlp(3, (4,), 1, "silu", 2)
    x = inputs(3, 2)
    before = x.clone()
    jacobian_penalty(backend).penalty(model, x)
    assert not x.requires_grad and x.grad is None
    assert torch.equal(x, before)


LOSS_CASES = [  # (activation, widths, d_out)
    ("silu", (6, 5), 1),
    ("silu", (6, 5), 2),
    ("tanh", (3,), 1),
    ("tanh", (5, 7, 4), 3),
    ("relu", (8, 8), 1),
    ("relu", (5, 7, 4), 2),
]


@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.7, 5.0])
@pytest.mark.parametrize("activation,widths,d_out", LOSS_CASES)
@pytest.mark.parametrize("backend", MLP_BACKENDS)
def test_jacobian_loss_is_mse_plus_lambda_times_penalty(lam, activation, widths, d_out, backend):
    model = make_mlp(3, widths, d_out, activation, 3 + len(widths))
    x = inputs(3, 3)
    y = torch.randn(len(x), d_out, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    params = named_params(model)
    names = list(params)
    options = {} if backend is None else {"backend": backend}
    reg = registry().get("regularizer", "jacobian")(**options)
    assert isinstance(reg, JacobianPenalty)
    got = reg.loss(model, x, y, lam)
    mse = torch.mean((reference_output(model, x, params) - y) ** 2)
    want = mse + lam * reference_penalty(model, x, params)
    assert_close(got, want)
    got_grads = torch.autograd.grad(got, [params[n] for n in names])
    want_grads = torch.autograd.grad(want, [params[n] for n in names])
    for name, g, w in zip(names, got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=RTOL, atol=ATOL, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("backend", GENERIC_BACKENDS)
def test_jacobian_loss_for_generic_module(backend):
    model = generic_module(3, 2)
    x = inputs(3, 8)
    y = torch.randn(len(x), 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    params = named_params(model)
    names = list(params)
    got = jacobian_penalty(backend).loss(model, x, y, 0.3)
    want = torch.mean((reference_output(model, x, params) - y) ** 2) + 0.3 * reference_penalty(
        model, x, params
    )
    assert_close(got, want)
    for name, g, w in zip(
        names,
        torch.autograd.grad(got, [params[n] for n in names]),
        torch.autograd.grad(want, [params[n] for n in names]),
    ):
        torch.testing.assert_close(g, w, rtol=RTOL, atol=ATOL, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("backend", MLP_BACKENDS)
def test_jacobian_loss_uses_the_penalty_not_just_mse(backend):
    model = make_mlp(3, (6,), 1, "tanh", 4)
    x = inputs(3, 4)
    y = torch.zeros(len(x), 1, dtype=torch.float64)
    reg = jacobian_penalty(backend)
    base = reg.loss(model, x, y, 0.0)
    assert_close(reg.loss(model, x, y, 2.0) - base, 2.0 * reference_penalty(model, x, named_params(model)))


@pytest.mark.parametrize("lam", [0.0, 1e-3, 1.0, 1e6])
def test_none_regularizer_is_plain_mse_for_any_lambda(lam):
    model = make_mlp(3, (6,), 1, "silu", 6)
    x = inputs(3, 6)
    y = torch.randn(len(x), 1, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    reg = registry().get("regularizer", "none")()
    assert isinstance(reg, NoPenalty)
    params = named_params(model)
    names = list(params)
    got = reg.loss(model, x, y, lam)
    want = torch.mean((reference_output(model, x, params) - y) ** 2)
    assert_close(got, want)
    got_grads = torch.autograd.grad(got, [params[n] for n in names])
    want_grads = torch.autograd.grad(want, [params[n] for n in names])
    for g, w in zip(got_grads, want_grads):
        assert_close(g, w)
    assert reg.penalty(model, x).item() == 0.0


def test_regularizers_reject_unknown_options():
    for name in ("jacobian", "none"):
        with pytest.raises(JacdistillError, match="bogus"):
            registry().get("regularizer", name)(bogus=1)
