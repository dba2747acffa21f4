"""`jacdistill sweep`: trial files, arms, resume after kill -9, local and Dask executors agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

JACDISTILL = str(Path(sys.executable).with_name("jacdistill"))
SMALL = ("--datasets", "yacht", "--students", "tree", "--seeds", "0", "--epochs", "20")
KEYS = {
    "dataset",
    "student",
    "arm",
    "seed",
    "lam",
    "teacher_r2_test",
    "student_r2_test",
    "fidelity_r2_test",
    "complexity",
    "seconds",
    "formula",
}


def jd(*args, cwd, timeout=600):
    return subprocess.run([JACDISTILL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def trials(sweep_dir: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((sweep_dir / "trials").glob("*.json"))}


def comparable(value):
    """The record without wall times (anywhere in it), which differ from run to run."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in ("seconds", "timings")}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("local")
    proc = jd("sweep", *SMALL, "--out", str(cwd / "s"), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc, cwd / "s"


def test_every_arm_writes_a_trial_file_with_the_required_keys(local_sweep):
    proc, sweep_dir = local_sweep
    found = trials(sweep_dir)
    assert sorted(r["arm"] for r in found.values()) == sorted(
        ["direct", "baseline", "regularized", "augmented", "control"]
    )
    for record in found.values():
        assert KEYS <= set(record)
        assert record["dataset"] == "yacht" and record["student"] == "tree" and record["seed"] == 0
    by_arm = {r["arm"]: r for r in found.values()}
    assert by_arm["direct"]["lam"] is None and by_arm["direct"]["teacher_r2_test"] is None
    assert by_arm["baseline"]["lam"] == 0.0
    tuned = by_arm["regularized"]["tuning"]["compute"]["teacher_trainings"]
    assert by_arm["control"]["candidates"] == tuned == len(by_arm["control"]["candidate_seeds"])
    assert "10 in all" not in proc.stdout and "5 in all" in proc.stdout


def test_rerun_skips_finished_trials_and_other_settings_are_refused(local_sweep, tmp_path):
    _, sweep_dir = local_sweep
    before = {p.name: p.stat().st_mtime_ns for p in (sweep_dir / "trials").glob("*.json")}
    again = jd("sweep", *SMALL, "--out", str(sweep_dir), cwd=tmp_path)
    assert again.returncode == 0 and "0 trials run, 5 already finished" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (sweep_dir / "trials").glob("*.json")} == before
    other = jd("sweep", *SMALL[:-1], "30", "--out", str(sweep_dir), cwd=tmp_path)
    assert other.returncode == 2 and "other settings" in other.stderr


def test_dask_local_cluster_gives_the_same_results(local_sweep, tmp_path):
    _, local_dir = local_sweep
    proc = jd("sweep", *SMALL, "--executor", "dask", "--out", str(tmp_path / "d"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    dask_trials, local_trials = trials(tmp_path / "d"), trials(local_dir)
    assert dask_trials.keys() == local_trials.keys()
    for name in local_trials:
        assert comparable(dask_trials[name]) == comparable(local_trials[name]), name


def test_kill_9_loses_only_trials_in_flight_and_the_rerun_completes(tmp_path):
    args = (
        "sweep",
        "--datasets",
        "yacht",
        "--students",
        "tree",
        "--seeds",
        "0,1,2",
        "--epochs",
        "300",
        "--arms",
        "baseline,regularized,control",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "k"),
    )
    process = subprocess.Popen(
        [JACDISTILL, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    trial_dir = tmp_path / "k" / "trials"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and len(list(trial_dir.glob("*.json"))) < 2:
        time.sleep(0.05)
    assert process.poll() is None, "the sweep finished before it could be killed; make it longer"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    survivors = trials(tmp_path / "k")  # every file that exists is whole JSON
    assert 2 <= len(survivors) < 9
    stamps = {p.name: p.stat().st_mtime_ns for p in trial_dir.glob("*.json")}
    resumed = jd(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(survivors)} already finished" in resumed.stdout
    assert len(trials(tmp_path / "k")) == 9
    assert all(trial_dir.joinpath(name).stat().st_mtime_ns == stamp for name, stamp in stamps.items())
    assert not list(trial_dir.glob(".*.tmp"))


def test_toml_config_describes_the_grid(tmp_path):
    (tmp_path / "grid.toml").write_text(
        'datasets = ["yacht"]\nstudents = ["tree"]\nseeds = [3]\narms = ["direct", "baseline"]\n'
        '[teacher]\nepochs = 10\n[student_options.tree]\nmax_depth = 3\n'
    )
    proc = jd("sweep", "--config", "grid.toml", "--out", "c", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = trials(tmp_path / "c")
    assert sorted(found) == ["yacht__tree__baseline__seed3.json", "yacht__tree__direct__seed3.json"]
    assert all(r["complexity"] <= 8 for r in found.values())  # max_depth=3: at most 8 leaves


def test_fixed_lam_skips_tuning_and_the_control_matches_one_teacher(tmp_path):
    proc = jd(
        "sweep", *SMALL, "--arms", "baseline,regularized,control", "--lam", "0.3", "--out", "f", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    by_arm = {r["arm"]: r for r in trials(tmp_path / "f").values()}
    assert by_arm["regularized"]["lam"] == 0.3 and "tuning" not in by_arm["regularized"]
    assert by_arm["control"]["candidates"] == 1 and by_arm["control"]["candidate_seeds"] == [0]
    # one λ = 0 candidate with the sweep's seed is the baseline itself
    assert by_arm["control"]["student_r2_test"] == by_arm["baseline"]["student_r2_test"]


def test_sweep_json_from_before_a_new_setting_still_resumes(local_sweep, tmp_path):
    _, sweep_dir = local_sweep
    saved = json.loads((sweep_dir / "sweep.json").read_text())
    older = tmp_path / "older"
    (older / "trials").mkdir(parents=True)
    (older / "sweep.json").write_text(json.dumps({k: v for k, v in saved.items() if k != "lam"}))
    proc = jd("sweep", *SMALL, "--arms", "direct", "--out", str(older), cwd=tmp_path)
    assert proc.returncode == 2 and "other settings" in proc.stderr  # arms differ: refused
    (older / "sweep.json").write_text(
        json.dumps({**{k: v for k, v in saved.items() if k != "lam"}, "arms": ["direct"]})
    )
    proc = jd("sweep", *SMALL, "--arms", "direct", "--out", str(older), cwd=tmp_path)
    assert proc.returncode == 0 and "1 trials run" in proc.stdout, proc.stderr
    (older / "sweep.json").write_text('{"datasets": ')  # cut short
    proc = jd("sweep", *SMALL, "--arms", "direct", "--out", str(older), cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "cannot read" in lines[0], proc.stderr


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--datasets", "nosuch"], "unknown dataset 'nosuch'"),
        (["--lam", "-1"], "finite number >= 0"),
        (["--arms", "baseline,nosuch"], "unknown arm 'nosuch'"),
        (["--arms", "baseline,control"], "control arm needs the regularized arm"),
        (["--students", "nosuch"], "unknown student 'nosuch'"),
        (["--student-opt", "generations=3"], "STUDENT.KEY=VALUE"),
        (["--student-opt", "tree.nosuch=3"], "has no option 'nosuch'"),
        (["--seeds", "a,b"], "comma-separated"),
        (["--config", "missing.toml"], "cannot read config"),
        (["--select", "parsimony=-1"], "'select' must be best, parsimony=TOL"),
        (["--student-inputs", "centred"], "'centred' is not one of 'standardized', 'scaled'"),
    ],
)
def test_bad_sweep_input_is_one_line_exit_2(tmp_path, args, expected):
    proc = jd("sweep", "--datasets", "yacht", "--students", "tree", *args, "--out", "x", cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "x").exists()


def test_report_command_writes_markdown_plots_and_json(local_sweep, tmp_path):
    _, sweep_dir = local_sweep
    proc = jd("report", str(sweep_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("report.md", "student_r2_vs_lambda.png", "fidelity_vs_accuracy.png", "delta_r2_forest.png"):
        assert (sweep_dir / name).stat().st_size > 0
    numbers = json.loads(jd("report", str(sweep_dir), "--json", cwd=tmp_path).stdout)["students"]["tree"]
    for key in (
        "mean_relative_gain",
        "median_delta_r2",
        "wins",
        "ties",
        "losses",
        "median_delta_r2_vs_direct",
        "median_delta_r2_vs_control",
    ):
        assert key in numbers
    assert numbers["wins"] + numbers["ties"] + numbers["losses"] == 1  # one dataset
    missing = jd("report", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error:")


def test_control_candidates_share_the_units_split(local_sweep):
    """Every control candidate is fitted and scored on the unit's split; only its model seed
    differs, so its test R² is comparable with the other arms'. The first candidate is the
    baseline itself."""
    from jacdistill import evaluation
    from jacdistill.data import load_bundled
    from jacdistill.metrics import rank_score
    from jacdistill.search import restart_seed
    from jacdistill.sweep import SweepSpec

    _, sweep_dir = local_sweep
    control = trials(sweep_dir)["yacht__tree__control__seed0.json"]
    spec = SweepSpec.from_settings(json.loads((sweep_dir / "sweep.json").read_text()))
    data = load_bundled("yacht")
    candidates = [
        evaluation.fit_and_score(
            data, evaluation.baseline_params(spec.params("tree", restart_seed(0, i))), split_seed=0
        ).metrics
        for i in range(control["candidates"])
    ]
    best = max(candidates, key=lambda m: rank_score(m["student_r2_val"]))
    baseline = trials(sweep_dir)["yacht__tree__baseline__seed0.json"]
    # (its teacher is the tuner's λ = 0 teacher, trained in a stack: equal within float rounding)
    assert baseline["student_r2_val"] == pytest.approx(candidates[0]["student_r2_val"], rel=1e-6)
    # the candidates train together as one stack: equal to one-by-one fits within float rounding
    assert control["student_r2_test"] == pytest.approx(best["student_r2_test"], rel=1e-6)
    assert control["student_r2_val"] == pytest.approx(best["student_r2_val"], rel=1e-6)


def test_select_and_student_inputs_apply_to_every_arm(tmp_path):
    out = tmp_path / "sel"
    proc = jd(
        "sweep",
        *SMALL,
        "--arms",
        "direct,baseline",
        "--select",
        "complexity=3",
        "--student-inputs",
        "scaled",
        "--drop-terms",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    trials = [json.loads(p.read_text()) for p in (out / "trials").glob("*.json")]
    assert len(trials) == 2
    for trial in trials:
        assert trial["select"] == "complexity=3" and trial["complexity"] <= 3
        assert trial["student_inputs"] == "scaled" and trial["drop_terms"] is True
        assert [m["complexity"] <= 3 for m in trial["front"] if m["chosen"]] == [True]


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_failing_unit_leaves_the_others_to_finish(tmp_path, executor):
    from jacdistill import sweep as sweeps
    from jacdistill.data import load_bundled

    data_file = tmp_path / "later.csv"  # gone while the sweep runs: its unit fails in the worker
    spec = sweeps.SweepSpec(
        datasets=("yacht", str(data_file)), students=("tree",), seeds=(0,), arms=("direct",)
    )
    out = tmp_path / "s"
    sweeps.prepare(out, spec)
    with pytest.raises(
        sweeps.UnitsFailed,
        match=r"^1 of 2 units failed, the first \(dataset '.*later.csv', student 'tree', seed 0\) with ",
    ) as err:
        sweeps.execute(spec, out, executor, workers=1)
    assert len(err.value.failures) == 1 and len(trials(out)) == 1  # yacht's trial was written
    log = (out / "failures.log").read_text()
    assert "later.csv" in log and "Traceback" in log
    yacht = load_bundled("yacht")
    rows = [",".join(map(str, [*x, y])) for x, y in zip(yacht.X, yacht.y)]
    data_file.write_text("\n".join([",".join([*yacht.feature_names, yacht.target_name]), *rows]) + "\n")
    assert sweeps.execute(spec, out, executor, workers=1) == 1  # the rerun retries only that unit
    assert len(trials(out)) == 2 and not (out / "failures.log").exists()
