"""Teachers trained together as an MLPStack match the same teachers trained one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacdistill import Distiller, teacher
from jacdistill.plugins.regularizers.hessian import HessianPenalty
from jacdistill.plugins.regularizers.hutchinson import HutchinsonPenalty
from jacdistill.plugins.regularizers.jacobian import JacobianPenalty
from jacdistill.plugins.regularizers.none import NoPenalty
from jacdistill.search import Problem, Search

LAMS, SEEDS = [0.0, 1e-3, 1e-1, 1.0], [0, 1, 2, 3]


def problem_arrays(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X, Xv = rng.normal(size=(n, 4)), rng.normal(size=(60, 4))
    f = lambda A: np.sin(A[:, 0]) + A[:, 1] * A[:, 2]
    return X, f(X) + 0.1 * rng.normal(size=n), Xv, f(Xv)


def initial(seed, activation="silu"):
    torch.manual_seed(seed)
    return teacher.MLP(4, (12, 12), 1, activation)


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_stack_computes_what_its_members_compute():
    members = [initial(s) for s in SEEDS]
    stack = teacher.MLPStack(members)
    x = torch.randn(len(members), 7, 4)
    expected = torch.stack([m(x[i]) for i, m in enumerate(members)])
    torch.testing.assert_close(stack(x), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(stack.member(2)(x[2]), members[2](x[2]), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("regularizer", "activation"),
    [
        (JacobianPenalty(backend="analytic"), "silu"),  # closed-form gradients, stacked products
        (JacobianPenalty(backend="analytic"), "tanh"),
        (JacobianPenalty(backend="autograd"), "silu"),  # double backward through the stack
        (JacobianPenalty(backend="autograd"), "relu"),
        (NoPenalty(), "relu"),
        # the random estimators: each member draws its probes (and rows) from its own stream
        (HutchinsonPenalty(mode="jvp", probes=2), "silu"),
        (HutchinsonPenalty(mode="vjp", dist="gaussian"), "tanh"),
        (HutchinsonPenalty(mode="fd", rows=0.5), "silu"),
        (HessianPenalty(), "tanh"),
        (HessianPenalty(exact_max_dim=0, probes=2), "silu"),
    ],
    ids=lambda v: (
        v if isinstance(v, str) else f"{v.name}-{'-'.join(f'{k}={o}' for k, o in v.options.items())}"
    ),
)
def test_stacked_training_matches_training_one_by_one(regularizer, activation):
    """Each member: its own initial weights, λ, minibatch order and early stopping; the members
    stop at different epochs, and each keeps its best weights while the others go on."""
    X, y, Xv, yv = problem_arrays()
    config = teacher.TrainConfig(epochs=50, batch_size=32, patience=4)
    schedules = lambda: [teacher.EarlyStopping(lam, config.patience) for lam in LAMS]
    alone = []
    for schedule, seed in zip(schedules(), SEEDS):
        model = initial(seed, activation)
        alone.append((model, teacher.train(model, regularizer, schedule, X, y, Xv, yv, config, seed)))
    together = teacher.train_stack(
        [initial(s, activation) for s in SEEDS], regularizer, schedules(), X, y, Xv, yv, config, SEEDS
    )
    assert len({result.epochs_run for _, result in together}) > 1  # members did stop apart
    for (model, result), (stacked_model, stacked_result) in zip(alone, together):
        assert (stacked_result.epochs_run, stacked_result.best_epoch) == (
            result.epochs_run,
            result.best_epoch,
        )
        assert stacked_result.lam == result.lam
        assert stacked_result.best_val_mse == pytest.approx(result.best_val_mse, rel=1e-4)
        assert max_difference(model, stacked_model) < 1e-4
        assert [h["epoch"] for h in stacked_result.history] == [h["epoch"] for h in result.history]


@pytest.mark.parametrize(
    ("patience", "keep"),
    [(4, "last"), (None, "last"), (None, "best")],
    ids=["stopping-keep-last", "no-stopping-keep-last", "no-stopping-keep-best"],
)
def test_stacked_training_matches_training_one_by_one_in_every_regime(patience, keep):
    """keep="last": each member keeps the weights it stopped with (members stopping apart) or, with
    no early stopping, its last epoch's (all members running every epoch)."""
    X, y, Xv, yv = problem_arrays()
    regularizer = JacobianPenalty(backend="analytic")
    config = teacher.TrainConfig(epochs=30, batch_size=32, patience=patience, keep=keep)
    schedules = lambda: [teacher.EarlyStopping.of(lam, config) for lam in LAMS]
    alone = []
    for schedule, seed in zip(schedules(), SEEDS):
        model = initial(seed)
        alone.append((model, teacher.train(model, regularizer, schedule, X, y, Xv, yv, config, seed)))
    together = teacher.train_stack(
        [initial(s) for s in SEEDS], regularizer, schedules(), X, y, Xv, yv, config, SEEDS
    )
    runs = {result.epochs_run for _, result in together}
    if patience is None:
        assert runs == {30}  # every member ran every epoch
    else:
        assert len(runs) > 1  # members did stop apart
    for (model, result), (stacked_model, stacked_result) in zip(alone, together):
        assert stacked_result.epochs_run == result.epochs_run
        assert stacked_result.best_epoch == result.best_epoch
        if keep == "last":
            assert stacked_result.best_epoch == stacked_result.epochs_run
        assert stacked_result.best_val_mse == pytest.approx(result.best_val_mse, rel=1e-4)
        assert max_difference(model, stacked_model) < 1e-4


def test_stacked_training_is_deterministic():
    X, y, Xv, yv = problem_arrays()
    config = teacher.TrainConfig(epochs=8, batch_size=32, patience=4)

    def run():
        schedules = [teacher.EarlyStopping(lam, 4) for lam in LAMS]
        return teacher.train_stack(
            [initial(s) for s in SEEDS], JacobianPenalty(), schedules, X, y, Xv, yv, config, SEEDS
        )

    for (a, _), (b, _) in zip(run(), run()):
        assert max_difference(a, b) == 0


def test_a_search_trains_new_candidates_together_once():
    X, y, Xv, yv = problem_arrays()
    problem = Problem(
        X, y, Xv, yv, X, JacobianPenalty(), (8,), "silu", teacher.TrainConfig(epochs=5, patience=2),
        new_student=lambda seed: None, seed=0, fingerprint="test",
    )  # fmt: skip
    search = Search(problem)
    first = search.teachers([0.0, 0.1])
    again = search.teachers([0.1, 0.01, 0.0, 0.01])
    assert [t.lam for t in again] == [0.1, 0.01, 0.0, 0.01]
    assert again[0] is first[1] and again[2] is first[0] and again[1] is again[3]
    assert search.teacher_trainings == 3


@pytest.mark.parametrize(
    ("tuner", "regularizer", "regularizer_options"),
    [
        ("grid", "jacobian", {"backend": "autograd"}),
        ("constrained", "jacobian", {"backend": "autograd"}),
        ("grid", "hutchinson", {"mode": "fd", "rows": 0.5}),  # random draws: one stream per teacher
    ],
)
def test_tuners_choose_the_same_with_batched_and_sequential_teachers(tuner, regularizer, regularizer_options):
    X, y, Xv, yv = problem_arrays(n=300, seed=1)
    options = {"grid": [0.0, 1e-3, 1e-2, 1e-1]} if tuner == "grid" else {}
    fits = [
        Distiller(
            student="tree", student_options={"max_depth": 4}, tuner=tuner, tuner_options=options,
            regularizer=regularizer, regularizer_options=regularizer_options, widths=(12, 12),
            epochs=40, patience=5, batch_teachers=batch,
        ).fit(X, y, Xv, yv)
        for batch in (True, False)
    ]  # fmt: skip
    batched, sequential = fits
    assert batched.lam_ == sequential.lam_
    assert [t.lam for t in batched.search_.trials] == [t.lam for t in sequential.search_.trials]
    np.testing.assert_allclose(
        batched.predict_teacher(Xv), sequential.predict_teacher(Xv), rtol=1e-3, atol=1e-4
    )
    assert batched.score(Xv, yv) == pytest.approx(sequential.score(Xv, yv), abs=1e-3)


def test_the_baseline_reuses_the_tuners_zero_teacher_and_scores_as_if_trained_again():
    from jacdistill import evaluation
    from jacdistill.data import load_bundled

    data = load_bundled("yacht")
    params = dict(
        regularizer="jacobian", lam="auto", student="tree", student_options={"max_depth": 4}, epochs=30
    )
    main, base = evaluation.run(data, params)
    assert base.metrics["timings"]["teacher"] == 0  # not trained again
    assert base.estimator.teacher_ is main.estimator.search_.reusable(0.0).model
    fresh = evaluation.fit_and_score(data, evaluation.baseline_params(params)).metrics
    # the tuner trained its λ = 0 teacher in a stack: the same as alone within float rounding
    assert base.metrics["teacher_best_epoch"] == fresh["teacher_best_epoch"]
    for key in ("teacher_r2_test", "student_r2_test", "fidelity_r2_test"):
        assert base.metrics[key] == pytest.approx(fresh[key], rel=1e-5), key


def test_optuna_asks_for_a_batch_of_lambdas_and_trains_them_together():
    X, y, Xv, yv = problem_arrays(n=200, seed=2)
    est = Distiller(
        student="tree", student_options={"max_depth": 3}, tuner="optuna",
        tuner_options={"n_trials": 4, "batch": 2}, widths=(8,), epochs=10, patience=3,
    ).fit(X, y, Xv, yv)  # fmt: skip
    studied = [t for t in est.search_.trials if t.lam > 0]
    assert len(studied) == 4 and est.search_.compute()["teacher_trainings"] == 5  # and λ = 0
    assert all(t.student_r2_val is not None for t in studied)


def test_a_search_copies_the_trials_it_reuses():
    from jacdistill.registry import registry

    X, y, Xv, yv = problem_arrays(n=120)
    tree = registry().student("tree")
    problem = Problem(
        X, y, Xv, yv, X, NoPenalty(), (8,), "silu", teacher.TrainConfig(epochs=3),
        new_student=lambda seed: tree(seed=seed, max_depth=2), seed=0, fingerprint="test",
    )  # fmt: skip
    spare = Search(problem).teacher(0.0)
    for _ in range(2):
        search = Search(problem, [spare])
        assert search.student_r2(search.teacher(0.0)) > 0 and search.teacher_trainings == 0
    assert spare.student is None and spare.extra == {}


def test_sweep_workers_share_the_cores_without_oversubscribing():
    from jacdistill.estimator import available_cores
    from jacdistill.sweep import jobs_per_worker

    cores = available_cores()
    assert jobs_per_worker(1) == cores
    assert all(1 <= w * jobs_per_worker(w) <= cores for w in range(1, cores + 1))
