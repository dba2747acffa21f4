"""The closed forms of ``kernels.analytic`` on an MLPStack, member by member.

Each stacked result (output, Jacobian, directional derivatives, the fused loss and every parameter
gradient, with one λ per member and a weighted backward) is compared with (a) the same function
on the member as a plain MLP and (b) an independent float64 reference: autograd double backward
on the member (one backward pass per output column, ``create_graph=True``), which shares no code
with the closed forms. The float64 stack must match the reference to round-off; the float32 stack
to float32 accuracy (a wrong term gives errors of order λ or 1, far above these tolerances).
"""

from __future__ import annotations

import copy

import pytest
import torch

from jacdistill.kernels import analytic
from jacdistill.teacher import MLP, MLPStack

D_IN, BATCH, DIRECTIONS = 4, 6, 3
SEEDS = (11, 12, 13)
LAMS = (0.0, 1e-2, 0.5)
WEIGHTS = (0.7, -1.3, 2.0)  # incoming gradients of the members' losses
NETS = [  # activation, widths, outputs
    ("silu", (8, 8), 1),
    ("silu", (6,), 2),
    ("tanh", (8, 8), 2),
    ("tanh", (6,), 1),
    ("relu", (8, 8), 1),
    ("relu", (6,), 2),
]
F32, F64 = 2e-5, 1e-10  # max error relative to the largest reference entry


def members(activation, widths, d_out, dtype=torch.float32):
    nets = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        nets.append(MLP(D_IN, widths, d_out, activation).to(dtype))
    return nets


def batch(d_out, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = len(SEEDS)
    x = torch.randn(k, BATCH, D_IN, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(k, BATCH, d_out, generator=g, dtype=torch.float64).to(dtype)
    v = torch.randn(DIRECTIONS, k, BATCH, D_IN, generator=g, dtype=torch.float64).to(dtype)
    return x, y, v


def plain_params(model):
    """[W_1, b_1, …, W_o, b_o] of a plain MLP."""
    return [p for layer in (*model.hidden, model.out) for p in (layer.weight, layer.bias)]


def member_grads(stack, i):
    """Member i's slice of every stacked gradient, in the order of plain_params."""
    grad = lambda p: (p.grad if p.grad is not None else torch.zeros_like(p))[i]  # None: no effect
    layers = [(grad(w), grad(b)) for w, b in zip(stack.weights, stack.biases)]
    return [g for pair in layers for g in pair] + [grad(stack.out_weight), grad(stack.out_bias)]


def reference(member, x, y, lam, v=None):
    """float64 (f, J as k_out×B×d, J·v as P×B×k_out (None without v), loss, its parameter
    gradients) by autograd."""
    model = copy.deepcopy(member).double()
    x = x.double().detach().requires_grad_(True)
    out = model(x)
    jac = torch.stack(
        [torch.autograd.grad(out[:, j].sum(), x, create_graph=True)[0] for j in range(out.shape[1])]
    )
    loss = (out - y.double()).pow(2).mean() + lam * jac.pow(2).sum() / len(x)
    grads = torch.autograd.grad(loss, plain_params(model))
    jv = None if v is None else torch.einsum("jbd,pbd->pbj", jac, v.double()).detach()
    return out.detach(), jac.detach(), jv, loss.detach(), grads


def assert_rel(actual, expected, tol):
    expected = expected.to(actual.dtype)
    assert actual.shape == expected.shape
    scale = expected.abs().max().item()
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale + 1e-30, f"max error {err:.3e} vs max |entry| {scale:.3e}"


@pytest.mark.parametrize(("activation", "widths", "d_out"), NETS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_stack_matches_members_and_the_reference(activation, widths, d_out, dtype):
    nets = members(activation, widths, d_out, dtype)
    stack = MLPStack(nets)
    x, y, v = batch(d_out, dtype)
    tol = F32 if dtype == torch.float32 else F64
    assert analytic.is_mlp_stack(stack) and analytic.has_closed_form(stack)
    assert not analytic.is_plain_mlp(stack)

    out, jac = analytic.output_and_jacobian(stack, x)
    assert out.shape == (3, BATCH, d_out) and jac.shape == (3, d_out, BATCH, D_IN)
    out_d, jv = analytic.output_and_directional(stack, x, v)
    assert out_d.shape == (3, BATCH, d_out) and jv.shape == (DIRECTIONS, 3, BATCH, d_out)
    lam = torch.tensor(LAMS, dtype=dtype)
    loss = analytic.fused_loss(stack, x, y, lam)
    assert loss.shape == (3,)
    loss.backward(torch.tensor(WEIGHTS, dtype=dtype))

    for i, (net, lam_i, w_i) in enumerate(zip(nets, LAMS, WEIGHTS)):
        ref_out, ref_jac, ref_jv, ref_loss, ref_grads = reference(net, x[i], y[i], lam_i, v[:, i])
        for got, want in [(out[i], ref_out), (out_d[i], ref_out), (jac[i], ref_jac), (jv[:, i], ref_jv)]:
            assert_rel(got.detach(), want, tol)
        assert_rel(loss[i].detach(), ref_loss, tol)
        for got, want in zip(member_grads(stack, i), ref_grads):
            assert_rel(got, w_i * want, tol)

        # (a) the plain path on the member
        plain_out, plain_jac = analytic.output_and_jacobian(net, x[i])
        assert_rel(out[i].detach(), plain_out.detach(), tol)
        assert_rel(jac[i].detach(), plain_jac.detach(), tol)
        assert_rel(jv[:, i].detach(), analytic.output_and_directional(net, x[i], v[:, i])[1].detach(), tol)
        net.zero_grad()
        plain_loss = analytic.fused_loss(net, x[i], y[i], lam_i)
        (w_i * plain_loss).backward()
        assert_rel(loss[i].detach(), plain_loss.detach(), tol)
        for got, p in zip(member_grads(stack, i), plain_params(net)):
            assert_rel(got, p.grad, tol)


@pytest.mark.parametrize(("activation", "widths", "d_out"), NETS)
def test_stacked_jacobian_and_directions_are_differentiable(activation, widths, d_out):
    """The autograd paths (the ``analytic`` penalty and hutchinson's jvp): the gradient of a
    weighted sum of the members' penalties, against double backward in float64."""
    nets = members(activation, widths, d_out, torch.float64)
    stack = MLPStack(nets)
    x, y, v = batch(d_out, torch.float64, seed=1)
    weights = torch.tensor(WEIGHTS, dtype=torch.float64)

    _, jac = analytic.output_and_jacobian(stack, x)
    (jac.pow(2).sum((1, 2, 3)) / BATCH * weights).sum().backward()
    penalty_grads = [member_grads(stack, i) for i in range(3)]
    stack.zero_grad()
    _, jv = analytic.output_and_directional(stack, x, v)
    (jv.pow(2).sum((0, 2, 3)) / BATCH * weights).sum().backward()

    for i, net in enumerate(nets):
        model = copy.deepcopy(net)
        xi = x[i].detach().requires_grad_(True)
        out = model(xi)
        cols = [torch.autograd.grad(out[:, j].sum(), xi, create_graph=True)[0] for j in range(d_out)]
        ref_jac = torch.stack(cols)
        penalty = ref_jac.pow(2).sum() / BATCH
        want = torch.autograd.grad(penalty, plain_params(model), retain_graph=True, materialize_grads=True)
        for got, w in zip(penalty_grads[i], want):
            assert_rel(got, WEIGHTS[i] * w, F64)
        ref_jv = torch.einsum("jbd,pbd->pbj", ref_jac, v[:, i])
        want = torch.autograd.grad(ref_jv.pow(2).sum() / BATCH, plain_params(model), materialize_grads=True)
        for got, w in zip(member_grads(stack, i), want):
            assert_rel(got, WEIGHTS[i] * w, F64)


def test_a_float_lambda_applies_to_every_member():
    nets = members("silu", (8, 8), 2)
    stack = MLPStack(nets)
    x, y, _ = batch(2)
    shared = analytic.fused_loss(stack, x, y, 0.1)
    expanded = analytic.fused_loss(stack, x, y, torch.full((3,), 0.1))
    torch.testing.assert_close(shared, expanded, rtol=1e-6, atol=1e-7)
    shared.sum().backward()
    for i, net in enumerate(nets):
        ref_loss, ref_grads = reference(net, x[i], y[i], 0.1)[3:]
        assert_rel(shared[i].detach(), ref_loss, F32)
        for got, want in zip(member_grads(stack, i), ref_grads):
            assert_rel(got, want, F32)


@pytest.mark.parametrize(("activation", "widths", "d_out"), NETS)
def test_a_stack_of_one_is_the_plain_path(activation, widths, d_out):
    net = members(activation, widths, d_out)[0]
    stack = MLPStack([copy.deepcopy(net)])
    x, y, v = batch(d_out)
    x, y, v = x[:1], y[:1], v[:, :1]

    out, jac = analytic.output_and_jacobian(net, x[0])
    assert out.shape == (BATCH, d_out) and jac.shape == (d_out, BATCH, D_IN)  # the plain shapes
    s_out, s_jac = analytic.output_and_jacobian(stack, x)
    torch.testing.assert_close(s_out[0], out, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s_jac[0], jac, rtol=1e-6, atol=1e-7)

    d_out_, jv = analytic.output_and_directional(net, x[0], v[:, 0])
    assert jv.shape == (DIRECTIONS, BATCH, d_out)
    s_d_out, s_jv = analytic.output_and_directional(stack, x, v)
    torch.testing.assert_close(s_d_out[0], d_out_, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s_jv[:, 0], jv, rtol=1e-6, atol=1e-7)

    loss = analytic.fused_loss(net, x[0], y[0], 0.3)
    assert loss.shape == ()
    loss.backward()
    s_loss = analytic.fused_loss(stack, x, y, torch.tensor([0.3]))
    assert s_loss.shape == (1,)
    s_loss.sum().backward()
    torch.testing.assert_close(s_loss[0], loss, rtol=1e-6, atol=1e-7)
    for got, p in zip(member_grads(stack, 0), plain_params(net)):
        torch.testing.assert_close(got, p.grad, rtol=1e-6, atol=1e-7)

    # the parts-level function keeps its plain signature and shapes (benchmarks call it)
    activation_, weights, biases, w_out, b_out = analytic.mlp_parts(net)
    with torch.no_grad():
        plain_loss, grads = analytic.loss_and_gradients(
            x[0], y[0], 0.3, activation_, weights, biases, w_out, b_out
        )
    assert plain_loss.shape == ()
    assert [g.shape for g in grads] == [p.shape for p in plain_params(net)]
    torch.testing.assert_close(plain_loss, loss.detach(), rtol=1e-6, atol=1e-7)


def test_predicates():
    nets = members("tanh", (6,), 1)

    class OwnForward(MLPStack):
        def forward(self, x):
            return super().forward(x) * 2

    assert analytic.is_plain_mlp(nets[0]) and analytic.has_closed_form(nets[0])
    assert not analytic.is_mlp_stack(nets[0])
    assert analytic.is_mlp_stack(MLPStack(nets))
    assert not analytic.is_mlp_stack(OwnForward(nets)) and not analytic.has_closed_form(OwnForward(nets))
    assert not analytic.has_closed_form(torch.nn.Linear(3, 1))
