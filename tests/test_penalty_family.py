"""Hessian and Hutchinson penalties against torch.func in float64; estimator bias; lazy penalty."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from jacdistill import Distiller, JacdistillError, Regularizer, probes
from jacdistill.plugins.regularizers.hessian import HessianPenalty
from jacdistill.plugins.regularizers.hutchinson import MODES, HutchinsonPenalty
from jacdistill.plugins.regularizers.jacobian import output_and_jacobian_norm
from jacdistill.teacher import MLP, EarlyStopping, MLPStack, TrainConfig, lazy_weight, train


def mlp(activation="tanh", widths=(5, 4), d_out=1, d_in=3, seed=0):
    torch.manual_seed(seed)
    return MLP(d_in, widths, d_out, activation).double()


class Wrapped(nn.Module):
    """A module the closed forms do not recognise: forces the generic autograd paths."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def grads(value, model):
    return torch.autograd.grad(value, list(model.parameters()), allow_unused=True, materialize_grads=True)


def reference_hessian_norm(model, x):
    params = dict(model.named_parameters())

    def per_sample(p, xi):
        return jacrev(jacrev(lambda v: functional_call(model, p, (v,))))(xi)

    hessians = vmap(per_sample, in_dims=(None, 0))(params, x)  # B×k×d×d
    return hessians.pow(2).sum() / len(x)


def assert_grads_close(a, b):
    for ga, gb in zip(a, b):
        torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-13)


# ---------------------------------------------------------------------------------- hessian


@pytest.mark.parametrize("activation", ["tanh", "silu", "relu"])
@pytest.mark.parametrize("widths", [(5,), (5, 4), (3, 4, 2)])
@pytest.mark.parametrize("d_out", [1, 2])
def test_hessian_exact_matches_torch_func(activation, widths, d_out):
    model = mlp(activation, widths, d_out)
    x = torch.randn(7, 3, dtype=torch.float64)
    expected = reference_hessian_norm(model, x)
    penalty = HessianPenalty().penalty(model, x)
    torch.testing.assert_close(penalty, expected, rtol=1e-10, atol=1e-14)
    assert_grads_close(grads(penalty, model), grads(reference_hessian_norm(model, x), model))
    if activation != "relu":
        assert expected > 1e-6  # the comparison is not trivially 0 == 0


def test_hessian_relu_is_zero_and_generic_module_works():
    x = torch.randn(5, 3, dtype=torch.float64)
    assert HessianPenalty().penalty(mlp("relu"), x).item() == 0.0
    torch.manual_seed(1)
    generic = nn.Sequential(nn.Linear(3, 6), nn.Softplus(), nn.Linear(6, 1)).double()
    torch.testing.assert_close(
        HessianPenalty().penalty(generic, x), reference_hessian_norm(generic, x), rtol=1e-10, atol=1e-14
    )


def draws(regularizer, model, x, n, seed=0):
    torch.manual_seed(seed)
    return torch.stack([regularizer.penalty(model, x).detach() for _ in range(n)])


def assert_within_4_sigma(samples, exact):
    sigma = samples.std() / len(samples) ** 0.5
    assert abs(samples.mean() - exact) <= 4 * sigma, (samples.mean().item(), exact.item(), sigma.item())
    assert sigma < 0.1 * abs(exact)  # the band is tight enough to catch a biased estimator


@pytest.mark.parametrize("d_out", [1, 2])
def test_hessian_estimate_is_unbiased(d_out):
    model, x = mlp("silu", d_out=d_out), torch.randn(6, 3, dtype=torch.float64)
    exact = reference_hessian_norm(model, x).detach()
    assert_within_4_sigma(draws(HessianPenalty(exact_max_dim=0), model, x, 1500), exact)


def test_hessian_switches_to_estimate_above_threshold():
    model, x = mlp("tanh", d_in=3), torch.randn(4, 3, dtype=torch.float64)
    assert HessianPenalty(exact_max_dim=3).is_exact(3) and not HessianPenalty(exact_max_dim=2).is_exact(3)
    first, second = draws(HessianPenalty(exact_max_dim=2), model, x, 2)
    assert first != second  # random probes below the threshold...
    exact = HessianPenalty(exact_max_dim=3)
    assert exact.penalty(model, x) == exact.penalty(model, x)  # ...deterministic at or above it


# ------------------------------------------------------------------------------- hutchinson


@pytest.mark.parametrize("mode", ["jvp", "vjp", "fd"])
@pytest.mark.parametrize("dist", ["rademacher", "gaussian"])
@pytest.mark.parametrize("d_out", [1, 3])
def test_hutchinson_mean_matches_exact_jacobian_norm(mode, dist, d_out):
    model, x = mlp("tanh", d_out=d_out), torch.randn(6, 3, dtype=torch.float64)
    exact = output_and_jacobian_norm(model, x)[1].detach()
    samples = draws(HutchinsonPenalty(mode=mode, dist=dist, probes=2, eps=1e-6), model, x, 1500)
    if mode == "vjp" and dist == "rademacher" and d_out == 1:  # w² = 1: exact every time
        torch.testing.assert_close(samples, exact.expand_as(samples), rtol=1e-12, atol=0)
    else:
        assert_within_4_sigma(samples, exact)


@pytest.mark.parametrize("mode", ["jvp", "vjp", "fd"])
def test_hutchinson_on_a_random_subset_of_rows_is_still_unbiased(mode):
    model, x = mlp("silu", d_out=2), torch.randn(8, 3, dtype=torch.float64)
    exact = output_and_jacobian_norm(model, x)[1].detach()
    penalty = HutchinsonPenalty(mode=mode, rows=0.25, eps=1e-6)
    out, _ = penalty.output_and_penalty(model, x)
    torch.testing.assert_close(out, model(x))  # the MSE still sees every row
    assert_within_4_sigma(draws(penalty, model, x, 3000), exact)


def test_hutchinson_fd_bias_vanishes_linearly_with_step():
    """With the same probes, fd differs from the exact directional derivative by O(eps)."""
    model, x = mlp("silu"), torch.randn(8, 3, dtype=torch.float64)
    torch.manual_seed(3)
    exact_direction = HutchinsonPenalty(mode="jvp").penalty(model, x)
    errors = []
    for eps in (1e-2, 1e-3, 1e-4):
        torch.manual_seed(3)
        errors.append(
            (HutchinsonPenalty(mode="fd", eps=eps).penalty(model, x) - exact_direction).abs().item()
        )
    assert errors[0] > 1e-6
    for coarse, fine in zip(errors, errors[1:]):
        assert 5 < coarse / fine < 20  # first order: ten times smaller step, ten times less bias


@pytest.mark.parametrize("mode", ["jvp", "fd", "vjp"])
@pytest.mark.parametrize("activation", ["tanh", "silu", "relu"])
def test_hutchinson_closed_form_equals_generic_path_for_the_same_probes(mode, activation):
    model, x = mlp(activation, d_out=2), torch.randn(5, 3, dtype=torch.float64)
    penalty = HutchinsonPenalty(mode=mode, probes=3)
    torch.manual_seed(11)
    fast = penalty.penalty(model, x)
    fast_grads = grads(fast, model)
    torch.manual_seed(11)
    generic = penalty.penalty(Wrapped(model), x)
    torch.testing.assert_close(fast, generic, rtol=1e-10, atol=1e-14)
    assert_grads_close(fast_grads, grads(generic, model))


# ------------------------------------------------------------------------------------ stacks

STOCHASTIC = [
    *(HutchinsonPenalty(mode=mode, probes=2, rows=rows) for mode in MODES for rows in (1.0, 0.5)),
    HutchinsonPenalty(mode="jvp", dist="gaussian"),
    HessianPenalty(),
    HessianPenalty(exact_max_dim=0, probes=2),
]


@pytest.mark.parametrize("penalty", STOCHASTIC, ids=lambda p: f"{p.name}-{p.options}")
def test_a_stack_draws_and_penalises_what_its_members_would_alone(penalty):
    """Member i of a stack, drawing from stream i, gets the penalty (and weight gradients) that
    it gets alone from the same stream; the streams differ, so the members' probes do too."""
    members = [mlp("tanh", widths=(6, 5), d_out=2, seed=s) for s in range(3)]
    stack, x = MLPStack(members), torch.randn(3, 8, 3, dtype=torch.float64)
    streams = lambda: [torch.Generator().manual_seed(s) for s in (4, 5, 6)]
    with probes.streams(streams()):
        together = penalty.penalty(stack, x)
    assert together.shape == (3,)
    stacked_grads = torch.autograd.grad(
        together.sum(), stack.stacked(), allow_unused=True, materialize_grads=True
    )
    for i, (member, stream) in enumerate(zip(members, streams())):
        with probes.streams([stream]):
            alone = penalty.penalty(member, x[i])
        torch.testing.assert_close(together[i], alone, rtol=1e-10, atol=1e-14)
        member_grads = grads(alone, member)  # hidden weights, hidden biases, out weight, out bias
        order = [*member_grads[0:-2:2], *member_grads[1:-2:2], *member_grads[-2:]]
        for g_stack, g_alone in zip(stacked_grads, order):
            torch.testing.assert_close(g_stack[i], g_alone, rtol=1e-9, atol=1e-12)


def test_streams_give_reproducible_draws_and_must_match_the_teachers():
    like = torch.zeros(())
    with probes.streams([torch.Generator().manual_seed(1)]):
        first = probes.draw_probes((4, 3), "gaussian", like)
    with probes.streams([torch.Generator().manual_seed(1)]):
        again = probes.draw_probes((4, 3), "gaussian", like)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    with probes.streams([torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]):
        both = probes.draw_probes((4, 2, 3), "rademacher", like, member_axis=1)
        assert both.shape == (4, 2, 3) and not torch.equal(both[:, 0], both[:, 1])
        with pytest.raises(ValueError, match="2 random streams are open for 1 teacher"):
            probes.draw_probes((4, 3), "rademacher", like)


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "nope"},
        {"dist": "uniform"},
        {"probes": 0},
        {"probes": 1.5},
        {"eps": 0},
        {"eps": "x"},
        {"rows": 0},
        {"rows": 1.5},
        {"nosuch": 1},
    ],
)
def test_hutchinson_bad_options_are_user_errors(options):
    with pytest.raises(JacdistillError):
        HutchinsonPenalty(**options)


@pytest.mark.parametrize("options", [{"exact_max_dim": -1}, {"probes": 0}, {"dist": "cauchy"}])
def test_hessian_bad_options_are_user_errors(options):
    with pytest.raises(JacdistillError):
        HessianPenalty(**options)


# ------------------------------------------------------------------------------ lazy penalty


def test_lazy_weight_keeps_the_average_weight():
    weights = [lazy_weight(0.5, step, 4) for step in range(1, 13)]
    assert weights == [0, 0, 0, 2.0] * 3
    assert [lazy_weight(0.5, step, 1) for step in (1, 2)] == [0.5, 0.5]


class RecordingPenalty(Regularizer):
    name = "recording"

    def __init__(self):
        super().__init__()
        self.seen = []

    def output_and_penalty(self, model, x):
        return model(x), torch.zeros(())

    def loss(self, model, x, y, lam):
        self.seen.append(lam)
        return super().loss(model, x, y, lam)


def test_training_applies_the_penalty_every_k_steps_with_weight_k_lambda():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 2)), rng.normal(size=40)
    recorder = RecordingPenalty()
    config = TrainConfig(epochs=3, batch_size=8, patience=10, reg_every=3)
    train(MLP(2, (4,)), recorder, EarlyStopping(0.1, config.patience), X, y, X[:5], y[:5], config, seed=0)
    assert len(recorder.seen) == 15  # 5 batches × 3 epochs, counted across epoch boundaries
    assert recorder.seen == pytest.approx([0, 0, 0.3] * 5)


@pytest.mark.parametrize(
    "regularizer,options",
    [("hutchinson", {"mode": "fd"}), ("hessian", {}), ("jacobian", {"backend": "analytic"})],
)
def test_new_penalties_train_deterministically_through_the_estimator(regularizer, options):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(80, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    fit = lambda: Distiller(
        regularizer=regularizer,
        regularizer_options=options,
        lam=1e-2,
        reg_every=2,
        student="tree",
        widths=(8,),
        epochs=5,
        seed=3,
    ).fit(X, y)
    first, second = fit(), fit()
    np.testing.assert_array_equal(first.predict_teacher(X), second.predict_teacher(X))
