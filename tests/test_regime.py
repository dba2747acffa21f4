"""The teacher's regime: which epoch's weights it keeps (``keep="best"`` or ``"last"``) and whether
it stops early (``patience=None``: never, all the epochs run). ``keep="last"`` with
``patience=None`` is the paper's teacher, trained to the end whatever validation says."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jacdistill import Distiller, JacdistillError, evaluation, teacher
from jacdistill.plugins.regularizers.none import NoPenalty
from jacdistill.search import Problem, Search
from jacdistill.teacher import EarlyStopping, Schedule, TrainConfig

JACDISTILL = Path(sys.executable).with_name("jacdistill")
EPOCHS = 30
# noisy and small, with a high learning rate: validation MSE is far from monotone, so the best
# epoch is not the last and patience 3 stops long before the end
CONFIG = dict(epochs=EPOCHS, batch_size=16, lr=2e-2)
FAST = dict(student="tree", student_options={"max_depth": 3}, widths=(8,), batch_size=16, lr=2e-2)


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    X, Xv = rng.normal(size=(80, 3)), rng.normal(size=(40, 3))
    f = lambda A: np.sin(2 * A[:, 0]) + A[:, 1] * A[:, 2]
    return X, f(X) + 0.3 * rng.normal(size=80), Xv, f(Xv) + 0.3 * rng.normal(size=40)


def initial(seed=0):
    torch.manual_seed(seed)
    return teacher.MLP(3, (16, 16))


def fit(schedule: Schedule, config: TrainConfig, seed=0):
    model = initial(seed)
    return model, teacher.train(model, NoPenalty(), schedule, *arrays(), config, seed)


class KeepOnly(Schedule):
    """Keeps the weights of one epoch only and never stops: the reference for keep="last"."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def lam_for(self, epoch):
        return 0.0

    def observe(self, epoch, val_mse):
        return epoch == self.epoch, False


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def val_mse(model: torch.nn.Module) -> float:
    *_, Xv, yv = arrays()
    return float(np.mean((teacher.predict(model, Xv) - yv) ** 2))


# --------------------------------------------------------------------------- teacher.train


def test_keep_last_keeps_exactly_the_last_epochs_weights():
    config, best_config = (TrainConfig(**CONFIG, patience=None, keep=keep) for keep in ("last", "best"))
    model, result = fit(EarlyStopping.of(0.0, config), config)
    reference, _ = fit(KeepOnly(EPOCHS), config)
    best, best_result = fit(EarlyStopping.of(0.0, best_config), best_config)
    assert result.epochs_run == result.best_epoch == EPOCHS
    assert max_difference(model, reference) == 0  # the weights after the last epoch, bit for bit
    *_, Xv, _ = arrays()
    np.testing.assert_array_equal(teacher.predict(model, Xv), teacher.predict(reference, Xv))
    # the same run (same seed, never stopping) otherwise: the best epoch lies before the end
    assert [h["val_mse"] for h in result.history] == [h["val_mse"] for h in best_result.history]
    assert best_result.best_epoch < EPOCHS and max_difference(model, best) > 0


def test_keep_last_with_early_stopping_keeps_the_epoch_it_stopped_at():
    last, last_result = fit(EarlyStopping(0.0, 5, "last"), TrainConfig(**CONFIG))
    best, best_result = fit(EarlyStopping(0.0, 5, "best"), TrainConfig(**CONFIG))
    stopped = last_result.epochs_run
    assert stopped == best_result.epochs_run < EPOCHS  # the same stopping rule
    assert last_result.best_epoch == stopped == best_result.best_epoch + 5
    reference, _ = fit(KeepOnly(stopped), TrainConfig(**{**CONFIG, "epochs": stopped}))
    assert max_difference(last, reference) == 0 and max_difference(best, reference) > 0


def test_without_early_stopping_every_epoch_runs():
    _, stopped = fit(EarlyStopping(0.0, 1), TrainConfig(**CONFIG))
    _, full = fit(EarlyStopping(0.0, None), TrainConfig(**CONFIG))
    assert stopped.epochs_run < EPOCHS  # patience 1 would have stopped
    assert full.epochs_run == len(full.history) == EPOCHS
    assert [h["epoch"] for h in full.history] == list(range(1, EPOCHS + 1))
    assert full.best_val_mse == min(h["val_mse"] for h in full.history)  # keep="best" still


@pytest.mark.parametrize("keep", teacher.KEEP)
def test_the_reported_validation_mse_is_the_kept_weights(keep):
    config = TrainConfig(**CONFIG, patience=None, keep=keep)
    model, result = fit(EarlyStopping.of(0.0, config), config)
    assert result.best_val_mse == pytest.approx(val_mse(model), rel=1e-5)
    kept = result.history[result.best_epoch - 1]
    assert kept["val_mse"] == result.best_val_mse and kept["lam"] == result.lam
    if keep == "last":
        assert result.best_val_mse == result.history[-1]["val_mse"]
        assert result.best_val_mse > min(h["val_mse"] for h in result.history)


def test_a_regime_is_deterministic_by_seed():
    config = TrainConfig(**CONFIG, patience=None, keep="last")
    (a, _), (b, _), (c, _) = (fit(EarlyStopping.of(0.0, config), config, seed) for seed in (0, 0, 1))
    assert max_difference(a, b) == 0 and max_difference(a, c) > 0


def test_an_unknown_keep_is_refused():
    with pytest.raises(JacdistillError, match="keep must be one of 'best', 'last', got 'worst'"):
        EarlyStopping(0.0, 3, "worst")


# --------------------------------------------------------------------------- search and tuners


def problem(**config) -> Problem:
    X, y, Xv, yv = arrays()
    return Problem(
        X, y, Xv, yv, X, NoPenalty(), (16, 16), "silu", TrainConfig(**{**CONFIG, **config}),
        new_student=lambda seed: None, seed=0, fingerprint="test",
    )  # fmt: skip


@pytest.mark.parametrize("keep", teacher.KEEP)
def test_a_trials_validation_mse_is_its_kept_weights(keep):
    trial = Search(problem(patience=None, keep=keep)).teacher(0.0)
    history = [h["val_mse"] for h in trial.training.history]
    assert len(history) == EPOCHS
    assert trial.val_mse == (history[-1] if keep == "last" else min(history))
    assert trial.val_mse == pytest.approx(val_mse(trial.model), rel=1e-5)


def test_search_restarts_follow_the_regime():
    trials = Search(problem(patience=None, keep="last")).restarts(0.0, [1, 2])
    assert all(t.training.epochs_run == t.training.best_epoch == EPOCHS for t in trials)


def test_the_constrained_tuner_judges_the_last_epochs():
    X, y, Xv, yv = arrays()
    est = Distiller(**FAST, tuner="constrained", epochs=12, patience=None, keep="last").fit(X, y, Xv, yv)
    trials = est.search_.trials
    assert len(trials) >= 3 and all(t.training.epochs_run == t.training.best_epoch == 12 for t in trials)
    assert all(t.val_mse == t.training.history[-1]["val_mse"] for t in trials)
    last = lambda t: t.training.history[-1]["val_mse"]
    reference = next(t for t in trials if t.lam == 0.0)
    feasible = lambda t: last(t) <= 1.05 * last(reference)
    chosen = next(t for t in trials if t.model is est.teacher_)
    assert chosen is reference or feasible(chosen)
    assert not any(feasible(t) for t in trials if t.lam > chosen.lam)


def test_the_adaptive_tuner_refuses_keep_last():
    X, y, Xv, yv = arrays()
    est = Distiller(**FAST, tuner="adaptive", epochs=5, keep="last")
    with pytest.raises(JacdistillError, match="keep='last' is not supported by a tuner that moves λ"):
        est.fit(X, y, Xv, yv)


# --------------------------------------------------------------------------- Distiller and records


def test_distiller_parameters_are_checked():
    assert Distiller(patience=None, keep="last").resolve_plugins()
    for params, message in [
        ({"keep": "worst"}, "keep must be one of 'best', 'last', got 'worst'"),
        ({"patience": 0}, "patience must be an integer >= 1 or None, got 0"),
        ({"patience": "none"}, "patience must be"),
    ]:
        with pytest.raises(JacdistillError, match=message):
            Distiller(**params).resolve_plugins()


def test_the_records_say_the_last_epoch_was_kept():
    from jacdistill.data import load_bundled

    params = dict(**FAST, regularizer="none", lam=0.0, epochs=8, patience=None, keep="last")
    metrics = evaluation.fit_and_score(load_bundled("yacht"), params).metrics
    assert metrics["teacher_epochs"] == metrics["teacher_best_epoch"] == 8


def test_the_distillers_teacher_is_deterministic_by_seed():
    X, y, Xv, yv = arrays()
    fits = [
        Distiller(**FAST, regularizer="none", lam=0.0, epochs=8, patience=None, keep="last", seed=s)
        .fit(X, y, Xv, yv) for s in (3, 3)
    ]  # fmt: skip
    assert max_difference(fits[0].teacher_, fits[1].teacher_) == 0
    np.testing.assert_array_equal(fits[0].predict(Xv), fits[1].predict(Xv))


# --------------------------------------------------------------------------- sweep and CLI


def test_a_sweep_sets_the_regime_per_sweep(tmp_path):
    from jacdistill import sweep

    (tmp_path / "paper.toml").write_text(
        'datasets = ["yacht"]\nstudents = ["tree"]\nseeds = [0]\n'
        '[teacher]\nkeep = "last"\npatience = "none"\n'  # TOML has no null
    )
    spec = sweep.spec_from(str(tmp_path / "paper.toml"), {}, {}, {})
    assert spec.teacher == {"keep": "last", "patience": None}
    assert spec.params("tree", 0)["keep"] == "last" and spec.params("tree", 0)["patience"] is None
    sweep.check(spec)
    sweep.prepare(tmp_path / "s", spec)
    sweep.prepare(tmp_path / "s", spec)  # sweep.json reads back as the same settings: resumable
    bad = sweep.SweepSpec(datasets=("yacht",), students=("tree",), seeds=(0,), teacher={"keep": "x"})
    with pytest.raises(JacdistillError, match="keep must be one of"):
        sweep.check(bad)


def test_the_cli_keep_list_is_the_teachers():
    from jacdistill import cli

    assert cli.KEEP == teacher.KEEP


def jd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(JACDISTILL), *args], cwd=cwd, capture_output=True, text=True, timeout=180)


def test_cli_runs_the_papers_regime(tmp_path):
    proc = jd(
        "run", "--dataset", "yacht", "--regularizer", "none", "--student", "tree", "--epochs", "6",
        "--keep", "last", "--patience", "none", "--no-baseline", "--json", "--out", "r", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["teacher_epochs"] == metrics["teacher_best_epoch"] == 6
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["keep"] == "last" and config["patience"] is None


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [("--keep", "worst", "'worst' is not one of 'best', 'last'"), ("--patience", "never", "'none'")],
)
def test_cli_rejects_a_bad_regime_in_one_line(tmp_path, flag, value, fragment):
    proc = jd("run", "--regularizer", "none", "--student", "tree", flag, value, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and flag in lines[0] and fragment in lines[0], proc.stderr
    assert not list(tmp_path.iterdir())  # refused before any run directory


def test_teacher_regime_roughness_matches_finite_differences():
    """benchmarks/teacher_regime.py's roughness, mean ‖∂f/∂x‖²_F over rows, against central
    differences of the same MLP in float64 (step 1e-5: truncation and rounding errors ~1e-10)."""
    from jacdistill.benchmarks.teacher_regime import roughness

    torch.manual_seed(0)
    model = teacher.MLP(3, (16, 8), 1, "silu")
    X = np.random.default_rng(0).normal(size=(20, 3))
    exact = copy.deepcopy(model).double()
    step, grads = 1e-5, np.zeros_like(X)
    with torch.no_grad():
        for j in range(X.shape[1]):
            shift = np.zeros(X.shape[1])
            shift[j] = step
            ahead, behind = (exact(torch.as_tensor(X + s)).numpy()[:, 0] for s in (shift, -shift))
            grads[:, j] = (ahead - behind) / (2 * step)
    assert roughness(model, X) == pytest.approx(float(np.mean(np.sum(grads**2, axis=1))), rel=1e-8)
    assert roughness(model, X) > 0
