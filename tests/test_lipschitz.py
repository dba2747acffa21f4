"""The ``lipschitz`` penalty against independent references in float64.

Spectral mode: the product of ``torch.linalg.matrix_norm(W, ord=2)`` over the layers (times the
activation's largest slope per hidden layer), squared, and its gradient through the SVD. Local
mode: per-sample Jacobians from ``vmap(jacrev(...))``, their largest singular values, a
temperature-scaled logsumexp. Stacks must give member by member what the plain MLPs give.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from jacdistill import Distiller, JacdistillError
from jacdistill.kernels.analytic import SLOPES
from jacdistill.plugins.regularizers.lipschitz import SLOPE_BOUNDS, LipschitzPenalty
from jacdistill.registry import registry
from jacdistill.teacher import MLP, MLPStack, Schedule, TrainConfig, train, train_stack

RTOL, ATOL = 1e-9, 1e-12
CASES = [("tanh", (5,), 1), ("silu", (5, 4), 1), ("relu", (6, 5), 2), ("silu", (3, 4, 2), 3)]


def mlp(activation="silu", widths=(5, 4), d_out=1, d_in=3, seed=0):
    torch.manual_seed(seed)
    return MLP(d_in, widths, d_out, activation).double()


def inputs(n=7, d=3, seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def grads(value, model):
    return torch.autograd.grad(value, list(model.parameters()), allow_unused=True, materialize_grads=True)


def assert_all_close(got, want, rtol=RTOL, atol=ATOL):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


def reference_spectral(model: MLP) -> torch.Tensor:
    """(Π_l c·σ_max(W_l) · σ_max(W_o))² by full SVDs."""
    bound = torch.linalg.matrix_norm(model.out.weight, ord=2)
    for layer in model.hidden:
        bound = bound * SLOPE_BOUNDS[model.activation] * torch.linalg.svdvals(layer.weight)[0]
    return bound.square()


def reference_slopes(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """‖∂f/∂x(x_b)‖₂ (largest singular value) per sample, from vmap(jacrev(...))."""
    params = dict(model.named_parameters())

    def single(p, row):
        return functional_call(model, p, (row.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(single, argnums=1), in_dims=(None, 0))(params, x)  # B×k_out×d
    return torch.linalg.matrix_norm(jac, ord=2)


def reference_local(model, x, tau):
    smooth_max = tau * (torch.logsumexp(reference_slopes(model, x) / tau, dim=0) - math.log(len(x)))
    return smooth_max.square()


# ------------------------------------------------------------------------------------ spectral


def test_silu_slope_bound_is_the_largest_slope():
    a = torch.linspace(-20, 20, 400_001, dtype=torch.float64)
    slopes = SLOPES["silu"](a)[1]
    assert slopes.max().item() <= SLOPE_BOUNDS["silu"] < slopes.max().item() + 1e-9
    assert SLOPES["tanh"](a)[1].max().item() <= SLOPE_BOUNDS["tanh"] == 1.0


@pytest.mark.parametrize("activation,widths,d_out", CASES)
def test_spectral_matches_svd_value_and_gradients(activation, widths, d_out):
    model, x = mlp(activation, widths, d_out), inputs()
    reg = LipschitzPenalty(mode="spectral", iterations=500)
    out, got = reg.output_and_penalty(model, x)
    want = reference_spectral(model)
    assert got.ndim == 0 and got.dtype == torch.float64 and want.item() > 1e-3
    torch.testing.assert_close(got, want, rtol=RTOL, atol=0)
    torch.testing.assert_close(out, model(x), rtol=RTOL, atol=ATOL)
    got_grads, want_grads = grads(got, model), grads(want, model)
    assert_all_close(got_grads, want_grads, rtol=1e-7, atol=1e-10)
    assert all(g.abs().max() > 0 for g, p in zip(got_grads, model.parameters()) if p.ndim == 2)


def test_spectral_estimate_converges_over_calls_from_kept_vectors():
    model = mlp("tanh", (16, 16), 1, d_in=8, seed=3)
    reg, x, want = LipschitzPenalty(), inputs(d=8), reference_spectral(model)
    values = [reg.penalty(model, x).item() for _ in range(400)]
    assert all(v <= want.item() * (1 + 1e-12) for v in values)  # uᵀWv never exceeds σ_max
    assert values[-1] == pytest.approx(want.item(), rel=1e-9)
    assert abs(values[-1] - want.item()) < abs(values[0] - want.item())
    fresh = LipschitzPenalty().penalty(model, x).item()  # a new instance starts over
    assert fresh == pytest.approx(values[0], rel=1e-12)


def test_spectral_needs_jacdistills_mlp_and_local_does_not():
    generic = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    with pytest.raises(JacdistillError) as info:
        LipschitzPenalty().penalty(generic, inputs())
    assert "\n" not in str(info.value) and "mode=local" in str(info.value)
    assert LipschitzPenalty(mode="local").penalty(generic, inputs()).item() > 0


# --------------------------------------------------------------------------------------- local


@pytest.mark.parametrize("tau", [0.05, 1.0])
@pytest.mark.parametrize("activation,widths,d_out", CASES)
def test_local_matches_jacrev_value_and_gradients(activation, widths, d_out, tau):
    model, x = mlp(activation, widths, d_out, seed=2), inputs(9)
    out, got = LipschitzPenalty(mode="local", temperature=tau).output_and_penalty(model, x)
    want = reference_local(model, x, tau)
    assert got.ndim == 0 and want.item() > 1e-6
    torch.testing.assert_close(got, want, rtol=RTOL, atol=0)
    torch.testing.assert_close(out, model(x), rtol=RTOL, atol=ATOL)
    assert_all_close(grads(got, model), grads(want, model))


@pytest.mark.parametrize("d_out", [1, 2])
def test_local_on_any_module_matches_jacrev(d_out):
    torch.manual_seed(4)
    generic = nn.Sequential(nn.Linear(3, 6), nn.Softplus(), nn.Linear(6, d_out)).double()
    x = inputs(8)
    got = LipschitzPenalty(mode="local", temperature=0.2).penalty(generic, x)
    want = reference_local(generic, x, 0.2)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=0)
    assert_all_close(grads(got, generic), grads(want, generic))


def test_temperature_moves_the_smooth_max_from_the_max_to_the_mean():
    model, x = mlp("tanh", (6,), 1, seed=5), inputs(11)
    slopes = reference_slopes(model, x)
    penalty = lambda tau: LipschitzPenalty(mode="local", temperature=tau).penalty(model, x).item()
    top = slopes.max().item()
    for tau in (1e-4, 1e-2, 0.1):  # max − τ·log B <= smooth max <= max
        assert (top - tau * math.log(len(x))) ** 2 * (1 - 1e-12) <= penalty(tau) <= top**2
    assert penalty(1e-7) == pytest.approx(top**2, rel=1e-5)
    assert penalty(1e4) == pytest.approx(slopes.mean().item() ** 2, rel=1e-4)


# -------------------------------------------------------------------------------------- stacks


@pytest.mark.parametrize("mode", ["spectral", "local"])
@pytest.mark.parametrize("activation,d_out", [("silu", 1), ("tanh", 2)])
def test_a_stack_gives_each_member_what_its_plain_mlp_gives(mode, activation, d_out):
    members = [mlp(activation, (5, 4), d_out, seed=s) for s in (0, 1, 2)]
    stack = MLPStack(members)
    x = torch.stack([inputs(6, seed=s) for s in (3, 4, 5)])
    options = {"mode": mode, "iterations": 2}  # unconverged: members must start where plain MLPs do
    reg = LipschitzPenalty(**options)
    assert reg.handles_stacks()
    for _ in range(3):  # and keep their own vectors from call to call
        out, got = reg.output_and_penalty(stack, x)
    assert got.shape == (3,)
    got_grads = torch.autograd.grad(got.sum(), stack.stacked(), allow_unused=True, materialize_grads=True)
    for i, member in enumerate(members):
        plain = LipschitzPenalty(**options)
        for _ in range(3):
            want_out, want = plain.output_and_penalty(member, x[i])
        torch.testing.assert_close(got[i], want, rtol=1e-12, atol=0)
        torch.testing.assert_close(out[i], want_out, rtol=1e-12, atol=1e-14)
        member_grads = dict(zip((n for n, _ in member.named_parameters()), grads(want, member)))
        order = [f"hidden.{l}.weight" for l in range(2)] + [f"hidden.{l}.bias" for l in range(2)]
        for name, g in zip([*order, "out.weight", "out.bias"], got_grads):
            torch.testing.assert_close(g[i], member_grads[name], rtol=1e-10, atol=1e-14)


def test_members_leaving_a_stack_keep_their_converged_vectors():
    members = [mlp("silu", (8, 8), 1, seed=s) for s in (0, 1, 2)]
    stack, x = MLPStack(members), torch.stack([inputs(5)] * 3)
    reg = LipschitzPenalty(iterations=500)
    reg.penalty(stack, x)
    stack.keep_members([2, 0], torch.optim.Adam(stack.parameters()))
    reg.iterations = 1  # one step from a cold start would not reach 1e-9
    got = reg.penalty(stack, x[:2])
    want = torch.stack([reference_spectral(members[2]), reference_spectral(members[0])])
    torch.testing.assert_close(got, want, rtol=RTOL, atol=0)


def test_stack_loss_is_mse_plus_each_members_lambda_times_penalty():
    members = [mlp("tanh", (5,), 1, seed=s) for s in (0, 1)]
    stack, x = MLPStack(members), torch.stack([inputs(6, seed=s) for s in (1, 2)])
    y, lam = torch.randn(2, 6, 1, dtype=torch.float64), torch.tensor([0.0, 0.7], dtype=torch.float64)
    reg = LipschitzPenalty(mode="local")
    got = reg.loss(stack, x, y, lam)
    mse = (stack(x) - y).square().mean(dim=(1, 2))
    want = mse + lam * torch.stack([reference_local(m, xi, 0.1) for m, xi in zip(members, x)])
    torch.testing.assert_close(got, want, rtol=RTOL, atol=0)


class StopAt(Schedule):
    """Constant λ, every epoch kept, stop after ``last`` epochs: members leave a stack in turn."""

    def __init__(self, lam, last):
        self.lam, self.last = lam, last

    def lam_for(self, epoch):
        return self.lam

    def observe(self, epoch, val_mse):
        return True, epoch >= self.last


def test_stack_training_matches_plain_training_as_members_leave():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (48, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    config = TrainConfig(epochs=6, batch_size=16, lr=1e-2)
    lams, lasts = (0.3, 0.1, 1.0), (2, 4, 6)
    fresh = lambda: [MLP(3, (6, 6), 1, "silu") for _ in lams]
    torch.manual_seed(0)
    together = train_stack(
        fresh(), LipschitzPenalty(), [StopAt(*s) for s in zip(lams, lasts)], X, y, X, y, config, [0, 1, 2]
    )
    torch.manual_seed(0)
    for i, model in enumerate(fresh()):
        train(model, LipschitzPenalty(), StopAt(lams[i], lasts[i]), X, y, X, y, config, i)
        for a, b in zip(together[i][0].parameters(), model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- options and plugin


@pytest.mark.parametrize(
    "options, says",
    [
        ({"mode": "global"}, "option 'mode' must be one of 'spectral', 'local', got 'global'"),
        ({"temperature": 0}, "option 'temperature' must be a number > 0, got 0"),
        ({"temperature": -1.5}, "option 'temperature' must be a number > 0, got -1.5"),
        ({"temperature": "hot"}, "option 'temperature' must be a number > 0, got 'hot'"),
        ({"iterations": 0}, "option 'iterations' must be an integer >= 1, got 0"),
        ({"bogus": 1}, "has no option 'bogus'"),
    ],
)
def test_bad_options_are_one_line_errors(options, says):
    with pytest.raises(JacdistillError) as info:
        registry().get("regularizer", "lipschitz")(**options)
    message = str(info.value)
    assert message.startswith("regularizer 'lipschitz'") and says in message and "\n" not in message


def test_registered_and_options_parse_from_text():
    cls = registry().get("regularizer", "lipschitz")
    assert cls is LipschitzPenalty and cls().mode == "spectral"
    reg = cls(mode="local", temperature="0.5", iterations="3")
    assert (reg.mode, reg.temperature, reg.iterations) == ("local", 0.5, 3)


def test_pickles_without_its_vectors():
    model, x = mlp(), inputs()
    reg = LipschitzPenalty(iterations=3)
    reg.penalty(model, x)
    loaded = pickle.loads(pickle.dumps(reg))
    assert loaded.options == reg.options and len(loaded._vectors) == 0
    assert loaded.penalty(model, x).item() == pytest.approx(
        LipschitzPenalty(iterations=3).penalty(model, x).item()
    )
    copy.deepcopy(reg)


def test_training_with_a_large_lambda_lowers_the_bound():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (64, 2))
    y = 3 * X[:, 0] - X[:, 1]
    config = TrainConfig(epochs=15, batch_size=32, lr=1e-2)
    bounds = {}
    for lam in (0.0, 1.0):
        torch.manual_seed(0)
        model = MLP(2, (8,), 1, "tanh")
        reg = LipschitzPenalty()
        train(model, reg, StopAt(lam, 15), X, y, X, y, config, 0)
        bounds[lam] = reference_spectral(model.double()).item()
    assert bounds[1.0] < 0.8 * bounds[0.0]


@pytest.mark.parametrize("options", [{}, {"mode": "local"}])
def test_distiller_tunes_with_lipschitz_in_stacks(options):
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, (90, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    est = Distiller(
        regularizer="lipschitz", regularizer_options=options, lam="auto", tuner="grid",
        tuner_options={"grid": [0.0, 1e-2, 1e-1]}, student="tree", student_options={"max_depth": 3},
        widths=(8,), epochs=8, patience=2, seed=0,
    ).fit(X, y)  # fmt: skip
    assert est.lam_ in (0.0, 1e-2, 1e-1) and len(est.search_.trials) == 3
    assert np.isfinite(est.predict_teacher(X)).all()


def test_cli_run_with_lipschitz(tmp_path):
    jacdistill = Path(sys.executable).with_name("jacdistill")
    run = lambda *extra: subprocess.run(
        [str(jacdistill), "run", "--dataset", "yacht", "--regularizer", "lipschitz", "--lam", "0.01",
         "--student", "tree", "--epochs", "3", "--no-baseline", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    proc = run("--reg-opt", "mode=local", "--json", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["regularizer"] == "lipschitz" and np.isfinite(metrics["teacher_r2_test"])
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["regularizer_options"] == {"mode": "local"}
