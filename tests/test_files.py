"""Output files: created with the mode the umask allows, a run directory that says whether it is
running, finished, interrupted or abandoned, and figures that cannot cost the results they show."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jacdistill import pipeline, storage
from jacdistill.report.plots import plot_fidelity, plot_forest, plot_lambda
from jacdistill.report.stats import aggregate

JACDISTILL = str(Path(sys.executable).with_name("jacdistill"))
FAST = ("--dataset", "yacht", "--regularizer", "none", "--student", "tree", "--epochs", "5", "--no-baseline")
NAMES = ["a$x^2$b", "a$x_$b", "a$\\foo$b", "back\\slash", "under_score"]  # $x_$, $\foo$: bad mathtext


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_writes_take_the_mode_the_umask_allows(tmp_path, umask):
    before = os.umask(umask)
    try:
        storage.write_json(tmp_path / "a.json", {"x": 1})
        storage.write_torch(tmp_path / "a.pt", {"x": 1})
    finally:
        os.umask(before)
    for name in ("a.json", "a.pt"):
        assert mode(tmp_path / name) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.pt"]  # no temporary left


def jd(*args: str, cwd: Path, umask: int | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [JACDISTILL, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=None if umask is None else lambda: os.umask(umask),
        **popen,
    )


def test_a_finished_run_directory(tmp_path):
    process = jd("run", *FAST, "--out", "r", cwd=tmp_path, umask=0o027)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    run = tmp_path / "r"
    files = [p for p in run.rglob("*") if p.is_file()]
    assert files and all(mode(p) == 0o640 for p in files), {str(p): oct(mode(p)) for p in files}
    written = status(run)
    assert written["state"] == "finished" and written["pid"] == process.pid
    assert {"started", "finished", "host"} <= set(written)
    assert pipeline.run_status(run) == "finished"
    assert pipeline.run_status(tmp_path) is None  # not a run directory


def start_long_run(tmp_path: Path, preexec_fn=None) -> tuple[subprocess.Popen, Path]:
    run = tmp_path / "r"
    process = subprocess.Popen(
        [JACDISTILL, "run", *FAST[:-3], "--epochs", "100000", "--patience", "100000", "--out", str(run)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )
    deadline = time.monotonic() + 120
    while not (run / "status.json").exists() or status(run)["pid"] != process.pid:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never marked its directory"
        time.sleep(0.05)
    return process, run


def status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


@pytest.mark.skipif(os.name != "posix", reason="sends signals")
def test_a_killed_run_is_abandoned_and_an_interrupted_one_says_so(tmp_path, interruptible):
    process, run = start_long_run(tmp_path)
    assert pipeline.run_status(run) == "running"
    process.kill()
    process.communicate()
    assert pipeline.run_status(run) == "abandoned"

    process, run = start_long_run(tmp_path, interruptible)  # the same directory, reused
    time.sleep(1.0)  # into training
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode == 130
    assert pipeline.run_status(run) == "interrupted"
    assert "interrupted" in status(run)


def tuning_report(dataset: str) -> dict:
    trial = lambda lam, r2: {
        "lam": lam,
        "teacher_r2_val": r2,
        "teacher_r2_test": r2,
        "student_r2_val": r2 - 0.1,
    }
    return {
        "dataset": dataset,
        "tuner": "grid",
        "student": "tree",
        "lam": 0.01,
        "trials": [trial(0.0, 0.9), trial(0.01, 0.92), trial(0.1, 0.8)],
    }


@pytest.mark.parametrize("name", NAMES)
def test_any_dataset_name_is_drawn(tmp_path, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline.write_tuning(tmp_path, tuning_report(name))
        trials = [
            {
                "dataset": name,
                "student": f"{name} student",
                "arm": arm,
                "fidelity_r2_test": 0.9,
                "student_r2_test": 0.8,
                "tuning": {"trials": [{"lam": lam, "student_r2_val": 0.7} for lam in (0.0, 0.1)]},
            }
            for arm in ("baseline", "regularized")
        ]
        plot_lambda(trials, tmp_path / "lambda.png")
        plot_fidelity(trials, tmp_path / "fidelity.png")
        paired = [{**t, "seed": seed} for t in trials for seed in range(3)]
        plot_forest(aggregate(paired), tmp_path / "forest.png")
    for png in ("tuning.png", "lambda.png", "fidelity.png", "forest.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "tuning.json").read_text())["dataset"] == name


def test_a_figure_that_fails_is_a_warning_and_the_results_are_kept(tmp_path):
    report = tuning_report("yacht")
    del report["trials"][1]["teacher_r2_test"]  # the plot needs it; the results do not
    with pytest.warns(UserWarning, match=r"could not draw .*tuning.png \(KeyError"):
        pipeline.write_tuning(tmp_path, report)
    assert json.loads((tmp_path / "tuning.json").read_text()) == report
    assert not (tmp_path / "tuning.png").exists()


def test_tune_with_a_file_named_like_mathtext(tmp_path):
    """The name of a data file is the data set's name, drawn in ``tuning.png``: such a name
    crashed matplotlib's mathtext after all the training."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    data = tmp_path / "a$x_$b.csv"
    pd.DataFrame({"u": x[:, 0], "v": x[:, 1], "y": x[:, 0] - x[:, 1] ** 2}).to_csv(data, index=False)
    process = jd(
        "tune", "--data", str(data), "--student", "tree", "--epochs", "5", "--out", "t", cwd=tmp_path
    )
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0 and not stderr.strip(), stderr
    assert json.loads((tmp_path / "t" / "tuning.json").read_text())["dataset"] == "a$x_$b"
    assert (tmp_path / "t" / "tuning.png").stat().st_size > 0
    assert pipeline.run_status(tmp_path / "t") == "finished"
