"""λ tuners: each on a small problem, no look at the test rows, Optuna resume, CLI behaviour."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jacdistill import Distiller, evaluation
from jacdistill.data import from_frame

SMALL = dict(regularizer="jacobian", student="tree", widths=(16,), epochs=60, patience=10, lr=1e-2, seed=0)
JACDISTILL = str(Path(sys.executable).with_name("jacdistill"))


def problem(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=n)
    return X, y


def fit(tuner, **options):
    X, y = problem()
    return Distiller(lam="auto", tuner=tuner, tuner_options=options, **SMALL).fit(X, y)


def test_grid_trains_and_distils_every_lambda_and_picks_the_best_student():
    grid = [0.0, 1e-3, 1e-1, 10.0]
    est = fit("grid", grid=grid)
    trials = est.search_.trials
    assert [t.lam for t in trials] == grid
    assert est.search_.compute()["teacher_trainings"] == 4 and est.search_.compute()["student_fits"] == 4
    assert est.lam_ == max(trials, key=lambda t: t.student_r2_val).lam
    assert trials[-1].teacher_r2_val < trials[0].teacher_r2_val  # λ = 10 flattens the teacher


def test_grid_restarts_seed_each_candidates_student_like_the_control():
    X, y = problem()
    params = dict(
        lam="auto",
        tuner="grid",
        **{**SMALL, "student": "gplearn", "seed": 3},
        student_options={"population_size": 60, "generations": 3},
    )
    plain = Distiller(**params, tuner_options={"grid": [0.0, 1e-2, 1e-1]}).fit(X, y)
    restarted = Distiller(**params, tuner_options={"grid": [0.0, 1e-2, 1e-1], "restarts": True}).fit(X, y)
    assert [t.student.seed for t in plain.search_.trials] == [3, 3, 3]
    assert [t.extra["student_seed"] for t in restarted.search_.trials] == [3, 1003, 2003]
    assert [t.student.seed for t in restarted.search_.trials] == [3, 1003, 2003]
    # candidate 0 (seed 3, λ = 0) is the same fit either way; the reseeded ones are other runs
    assert restarted.search_.trials[0].student_r2_val == plain.search_.trials[0].student_r2_val
    assert [t.student.expression() for t in restarted.search_.trials[1:]] != [
        t.student.expression() for t in plain.search_.trials[1:]
    ]
    assert restarted.lam_ == max(restarted.search_.trials, key=lambda t: t.student_r2_val).lam


def test_constrained_returns_the_largest_feasible_lambda_without_fitting_students():
    est = fit("constrained", tol=0.05, max_trainings=6)
    trials, compute = est.search_.trials, est.search_.compute()
    assert compute["teacher_trainings"] <= 6 and compute["student_fits"] == 1
    reference = next(t for t in trials if t.lam == 0.0)
    feasible = [t for t in trials if t.val_mse <= 1.05 * reference.val_mse]
    assert est.lam_ == max(t.lam for t in feasible)
    assert all(t.val_mse > 1.05 * reference.val_mse for t in trials if t.lam > est.lam_)
    assert 0 < est.lam_ < 1  # this problem tolerates some smoothing but not λ = 1
    assert est.training_.lam == est.lam_


def test_constrained_with_zero_tolerance_for_the_impossible_keeps_lambda_zero():
    est = fit("constrained", tol=0.0, lo=0.5, hi=10.0)
    assert est.lam_ == 0.0


def test_adaptive_moves_lambda_within_one_training_run():
    est = fit("adaptive", tol=0.05, lam0=1e-4, growth=1.5, adapt_epochs=30, patience=10)
    compute = est.search_.compute()
    assert compute["teacher_trainings"] == 1 and compute["student_fits"] == 1
    lams = est.search_.trials[0].extra["lam_per_epoch"]
    first_nonzero = next(i for i, lam in enumerate(lams) if lam > 0)
    assert first_nonzero > 10 and lams[first_nonzero] == pytest.approx(1e-4)  # warm-up at λ = 0
    for a, b in zip(lams[first_nonzero:], lams[first_nonzero + 1 :]):  # multiplicative controller
        assert b / a == pytest.approx(1.5, rel=1e-4) or b / a == pytest.approx(1 / 1.5, rel=1e-4)
    assert est.lam_ in [pytest.approx(lam, rel=1e-5) for lam in lams]
    assert est.lam_ > 0


def test_optuna_study_resumes_and_counts_earlier_trials(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = fit("optuna", n_trials=2, storage=storage)
    assert first.search_.compute()["teacher_trainings"] == 2 + 1  # the study's trials and λ = 0
    second = fit("optuna", n_trials=4, storage=storage)
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.n_trials == 4
    # only the two missing trials ran (plus λ = 0 and, if it came from the first run, the best λ)
    assert second.search_.compute()["teacher_trainings"] in (3, 4)


def test_tuners_never_see_the_test_rows():
    X, y = problem()
    frame = pd.DataFrame(np.column_stack([X, y]), columns=["a", "b", "c", "y"])
    clean = from_frame(frame.copy(), None, "clean")
    test_rows = evaluation.split_indices(len(y), 0).test
    frame.loc[test_rows, "y"] = 1e6 * np.random.default_rng(1).normal(size=len(test_rows))
    poisoned = from_frame(frame, None, "poisoned")
    for tuner in ("constrained", "grid"):
        params = {
            **SMALL,
            "tuner": tuner,
            "tuner_options": {"grid": [0.0, 1e-2, 1.0]} if tuner == "grid" else {},
        }
        a, b = evaluation.tune(clean, params), evaluation.tune(poisoned, params)
        assert a["lam"] == b["lam"]
        strip = lambda trials: [
            {k: v for k, v in t.items() if k not in ("seconds", "teacher_r2_test")} for t in trials
        ]
        assert strip(a["trials"]) == strip(b["trials"])
        assert a["teacher_r2_test"] != b["teacher_r2_test"]  # the poison is real


def jd(*args, cwd, **kwargs):
    return subprocess.run([JACDISTILL, *args], cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs)


TUNE_FAST = ("--dataset", "yacht", "--student", "tree", "--epochs", "40", "--patience", "10")


def test_tune_command_reports_trials_compute_and_a_plot(tmp_path):
    proc = jd(
        "tune",
        *TUNE_FAST,
        "--tuner",
        "grid",
        "--tuner-opt",
        "grid=[0,0.01,1]",
        "--json",
        "--out",
        str(tmp_path / "t"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["tuner"] == "grid" and report["lam"] in (0.0, 0.01, 1.0)
    assert [t["lam"] for t in report["trials"]] == [0.0, 0.01, 1.0]
    for trial in report["trials"]:
        assert {"lam", "teacher_r2_val", "student_r2_val", "seconds", "teacher_r2_test"} <= set(trial)
        assert trial["student_r2_val"] is not None
    assert report["compute"]["teacher_trainings"] == 3 and report["compute"]["student_fits"] == 3
    assert report["compute"]["seconds"] > 0
    assert (tmp_path / "t" / "tuning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = jd("tune", *TUNE_FAST, "--out", str(tmp_path / "u"), cwd=tmp_path)
    assert text.returncode == 0 and "tuner constrained chose" in text.stdout
    assert "student fits" in text.stdout and "teacher trainings" in text.stdout


def test_run_lam_auto_records_the_tuning(tmp_path):
    proc = jd(
        "run",
        *TUNE_FAST,
        "--lam",
        "auto",
        "--tuner",
        "adaptive",
        "--tuner-opt",
        "adapt_epochs=10",
        "--no-baseline",
        "--json",
        "--out",
        str(tmp_path / "r"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["tuner"] == "adaptive" and metrics["tuning"]["compute"]["teacher_trainings"] == 1
    fixed = jd(
        "run",
        *TUNE_FAST,
        "--lam",
        "0.01",
        "--no-baseline",
        "--json",
        "--out",
        str(tmp_path / "f"),
        cwd=tmp_path,
    )
    assert json.loads(fixed.stdout)["tuner"] is None and json.loads(fixed.stdout)["lam"] == 0.01


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--tuner", "nosuch"], "unknown tuner 'nosuch'"),
        (["--tuner-opt", "nosuch=1"], "tuner 'constrained' has no option 'nosuch'"),
        (["--tuner-opt", "tol=-1"], "tol"),
        (["--tuner", "grid", "--tuner-opt", "grid=abc"], "grid"),
        (
            ["--tuner", "grid", "--tuner-opt", "restarts=yes"],
            "option 'restarts' must be true or false, got 'yes'",
        ),
        (["--tuner", "optuna", "--tuner-opt", "n_trials=0"], "n_trials"),
        (["--tuner", "adaptive", "--tuner-opt", "growth=0.5"], "growth"),
        (["--tuner-opt", "novalue"], "--tuner-opt expects KEY=VALUE"),
    ],
)
def test_bad_tuner_options_are_one_line_exit_2(tmp_path, args, expected):
    proc = jd("tune", *TUNE_FAST, *args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run directory or training


def test_interrupted_optuna_study_continues_its_trial_count(tmp_path, interruptible):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = (
        "tune",
        "--dataset",
        "yacht",
        "--student",
        "tree",
        "--epochs",
        "300",
        "--patience",
        "300",
        "--tuner",
        "optuna",
        "--tuner-opt",
        f"storage={storage}",
        "--tuner-opt",
        "n_trials=4",
    )
    first = subprocess.Popen(
        [JACDISTILL, *args, "--out", str(tmp_path / "a")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    deadline = time.time() + 300
    finished = 0
    while time.time() < deadline and first.poll() is None:
        time.sleep(0.5)
        try:
            (summary,) = optuna.get_all_study_summaries(storage)
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            finished = sum(t.state.name == "COMPLETE" for t in study.trials)
        except (ValueError, KeyError):
            continue
        if finished >= 1:
            break
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130 and "Traceback" not in err
    assert 1 <= finished < 4
    second = jd(*args, "--out", str(tmp_path / "b"), "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    study = optuna.load_study(
        study_name=optuna.get_all_study_summaries(storage)[0].study_name, storage=storage
    )
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 4
    new_trainings = json.loads(second.stdout)["compute"]["teacher_trainings"]
    assert new_trainings <= 4 - finished + 2  # the rest of the study, λ = 0, perhaps the earlier best


@pytest.mark.parametrize("round_size", [1, 3])
def test_constrained_rounds_narrow_the_bracket_around_the_largest_feasible_lambda(round_size):
    est = fit("constrained", tol=0.05, max_trainings=6, round_size=round_size)
    lams = [t.lam for t in est.search_.trials]
    assert lams[:3] == [0.0, 1.0, 1e-4]
    reference = est.search_.trials[0]
    feasible = lambda lam: (
        next(t for t in est.search_.trials if t.lam == lam).val_mse <= 1.05 * reference.val_mse
    )
    if round_size == 3:  # one round of three splits [1e-4, 1] into decades
        assert lams[3:] == pytest.approx([1e-3, 1e-2, 1e-1])
    else:  # plain bisection in log λ: each midpoint of the bracket left by the one before
        low, high = -4.0, 0.0
        for lam in lams[3:]:
            assert math.log10(lam) == pytest.approx((low + high) / 2)
            low, high = (math.log10(lam), high) if feasible(lam) else (low, math.log10(lam))
    assert est.lam_ == max(lam for lam in lams if feasible(lam))


def test_constrained_speculation_trains_two_rounds_as_one_batch_for_the_same_lambda(monkeypatch):
    from jacdistill.search import Problem

    batches: list[int] = []
    train = Problem.train_teachers
    monkeypatch.setattr(
        Problem, "train_teachers", lambda self, s, seeds=None: batches.append(len(s)) or train(self, s, seeds)
    )
    speculated = fit("constrained", max_trainings=6)
    assert batches == [6]
    batches.clear()
    in_turn = fit("constrained", max_trainings=6, speculate=False)
    assert batches == [3, 3]
    assert [t.lam for t in speculated.search_.trials] == [t.lam for t in in_turn.search_.trials]
    assert speculated.lam_ == in_turn.lam_
    # when the first round ends the search, the speculated teachers were trained for nothing
    batches.clear()
    assert fit("constrained", tol=0.0, lo=0.5, hi=10.0).lam_ == 0.0 and batches == [6]
