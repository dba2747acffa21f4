"""The real ``jacdistill`` console script, run as a subprocess in a scratch directory.

Every user error must be exit code 2 with exactly one ``error: …`` line on stderr and no
traceback; successful runs must leave a complete run directory whose ``metrics.json`` is what
``--json`` prints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

JACDISTILL = Path(sys.executable).with_name("jacdistill")
FAST = ("--regularizer", "none", "--student", "tree", "--epochs", "5", "--no-baseline")
METRIC_KEYS = {
    "dataset",
    "regularizer",
    "lam",
    "student",
    "seed",
    "teacher_r2_test",
    "student_r2_test",
    "fidelity_r2_test",
    "complexity",
    "formula",
    "baseline",
    "timings",
}


def jd(*args: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    assert JACDISTILL.exists(), f"console script missing: {JACDISTILL} (pip install -e .)"
    return subprocess.run(
        [str(JACDISTILL), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, one non-empty stderr line starting with 'error:', no traceback; returns that line."""
    shown = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    assert proc.returncode == 2, shown
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert lines[0].startswith("error: "), shown
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), shown
    return lines[0]


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    shown = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, shown
    assert "Traceback" not in proc.stderr, shown


def without_timings(metrics: dict | None) -> dict | None:
    if metrics is None:
        return None
    return {k: (without_timings(v) if k == "baseline" else v) for k, v in metrics.items() if k != "timings"}


@pytest.fixture(scope="module")
def plugin_rows(tmp_path_factory) -> list[dict]:
    proc = jd("plugins", "--json", cwd=tmp_path_factory.mktemp("plugins"))
    assert_ok(proc)
    return json.loads(proc.stdout)


def names(rows: list[dict], kind: str) -> list[str]:
    return sorted(row["name"] for row in rows if row["kind"] == kind)


# --------------------------------------------------------------------------- a full --json run


@pytest.fixture(scope="module")
def tree_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("tree_run")
    proc = jd(
        "run",
        "--dataset",
        "yacht",
        "--regularizer",
        "none",
        "--student",
        "tree",
        "--json",
        "--epochs",
        "20",
        "--student-opt",
        "max_depth=4",
        "--out",
        str(cwd / "r"),
        cwd=cwd,
    )
    assert_ok(proc)
    return proc, cwd / "r"


def test_json_run_prints_metrics(tree_run):
    proc, _ = tree_run
    metrics = json.loads(proc.stdout)
    assert METRIC_KEYS <= set(metrics)
    assert metrics["dataset"] == "yacht"
    assert metrics["regularizer"] == "none"
    assert metrics["student"] == "tree"
    assert metrics["seed"] == 0
    assert metrics["lam"] == 0.0  # `none` ignores λ, so the run records the λ it trained with
    for key in ("teacher_r2_test", "student_r2_test", "fidelity_r2_test"):
        assert isinstance(metrics[key], float) and metrics[key] <= 1.0
    assert metrics["teacher_r2_test"] > 0.5  # yacht is easy even after 20 epochs
    assert isinstance(metrics["complexity"], int) and 1 <= metrics["complexity"] <= 2**4  # leaves
    assert metrics["formula"].startswith("residuary_resistance = ")
    timings = metrics["timings"]
    assert set(timings) == {"teacher", "student", "selection", "total"}
    assert all(t >= 0 for t in timings.values())
    assert timings["total"] == pytest.approx(timings["teacher"] + timings["student"] + timings["selection"])

    base = metrics["baseline"]
    assert isinstance(base, dict)
    assert METRIC_KEYS - {"baseline"} <= set(base)
    assert base["regularizer"] == "none" and base["lam"] == 0.0
    # λ = 0 already: the baseline is this very fit, not a second identical one
    assert {k: v for k, v in base.items() if k != "baseline"} == {
        k: v for k, v in metrics.items() if k != "baseline"
    }
    assert base["student"] == "tree" and base["dataset"] == "yacht" and base["seed"] == 0
    assert set(base["timings"]) >= {"teacher", "student", "total"}


def test_json_run_writes_run_dir(tree_run):
    from jacdistill import teacher

    proc, run_dir = tree_run
    assert {p.name for p in run_dir.iterdir()} == {
        "config.json",
        "status.json",
        "metrics.json",
        "formula.txt",
        "formula.tex",
        "teacher.pt",
        "front.csv",
        "front.png",
        "fit.png",
        "baseline",
    }
    assert {p.name for p in (run_dir / "baseline").iterdir()} == {
        "formula.txt",
        "formula.tex",
        "front.csv",
        "teacher.pt",
    }
    assert (run_dir / "metrics.json").read_text() == proc.stdout
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(proc.stdout)

    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "yacht"
    assert config["regularizer"] == "none"
    assert config["student"] == "tree"
    assert config["student_options"] == {"max_depth": 4}  # parsed as a literal
    assert config["resolved_options"]["student"]["max_depth"] == 4
    assert config["resolved_options"]["student"]["min_samples_leaf"] == 5  # the plugin's default
    assert config["epochs"] == 20
    assert config["seed"] == 0
    assert config["target"] == "residuary_resistance"
    assert len(config["features"]) == 6
    assert config["baseline"] is True
    versions = config["versions"]
    assert isinstance(versions, dict)
    assert {"python", "jacdistill", "torch", "numpy"} <= set(versions)
    assert config["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()

    for folder in (run_dir, run_dir / "baseline"):
        text = (folder / "formula.txt").read_text()
        assert text.startswith("residuary_resistance = ") and text.endswith("\n")
        assert (folder / "formula.tex").read_text().strip()
        model, saved = teacher.load(folder / "teacher.pt")
        assert saved["target"] == "residuary_resistance"
        assert saved["feature_names"] == config["features"]
        assert sum(p.numel() for p in model.parameters()) > 0
    assert not list(run_dir.rglob("*.tmp"))


# --------------------------------------------------------------------------- human summary


def test_summary_run_and_refusal_to_overwrite(tmp_path):
    out = tmp_path / "op"
    args = (
        "run",
        "--dataset",
        "yacht",
        "--student",
        "operon",
        "--student-opt",
        "generations=5",
        "--student-opt",
        "population_size=100",
        "--epochs",
        "20",
        "--out",
        str(out),
    )
    proc = jd(*args, cwd=tmp_path)
    assert_ok(proc)
    for label in ("teacher test R²", "student test R²", "fidelity R²", "complexity", "formula", "run dir"):
        assert label in proc.stdout, proc.stdout
    assert "baseline λ=0" in proc.stdout
    assert str(out) in proc.stdout
    finished = (out / "metrics.json").read_text()
    assert json.loads(finished)["student"] == "operon"

    again = jd(*args, cwd=tmp_path)
    assert_user_error(again, "already holds a finished run")
    assert again.stdout == ""
    assert (out / "metrics.json").read_text() == finished  # the finished run is untouched


def test_default_run_dir(tmp_path):
    proc = jd("run", "--dataset", "yacht", *FAST, cwd=tmp_path)
    assert_ok(proc)
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1
    assert run_dirs[0].name.endswith("-yacht-none-tree")
    assert (run_dirs[0] / "metrics.json").is_file()
    assert not (run_dirs[0] / "baseline").exists()
    run_dir_line = next(line for line in proc.stdout.splitlines() if line.startswith("run dir"))
    assert run_dir_line.split(None, 2)[2] == str(Path("runs") / run_dirs[0].name)


# --------------------------------------------------------------------------- pysr without Julia


def test_pysr_unavailable_fails_fast(tmp_path, plugin_rows):
    pysr = next(row for row in plugin_rows if row["kind"] == "student" and row["name"] == "pysr")
    if pysr["available"]:
        pytest.skip("PySR and Julia work here")
    started = time.monotonic()
    # enough epochs to take many minutes if it trained first
    proc = jd(
        "run",
        "--dataset",
        "yacht",
        "--student",
        "pysr",
        "--epochs",
        "100000",
        "--patience",
        "100000",
        "--out",
        str(tmp_path / "r"),
        cwd=tmp_path,
        timeout=180,
    )
    elapsed = time.monotonic() - started
    line = assert_user_error(proc, "pysr")
    assert "julia" in line.lower() or "pip install" in line.lower(), line
    # same reason as `jacdistill plugins` gives (its detail, e.g. a network error, may vary)
    assert line.startswith(f"error: student 'pysr' {pysr['reason'].split(':')[0]}"), line
    assert "Traceback" not in proc.stdout
    assert not (tmp_path / "r").exists()  # refused before the run directory, so before training
    assert elapsed < 90


# --------------------------------------------------------------------------- bad input


def _write_inputs(folder: Path) -> None:
    def table(rows: int = 30, b=lambda i: str(i), y=lambda i: str(i % 7), a=lambda i: str(i)) -> str:
        return "a,b,y\n" + "".join(f"{a(i)},{b(i)},{y(i)}\n" for i in range(rows))

    (folder / "empty.csv").write_text("")
    (folder / "header_only.csv").write_text("a,b,y\n")
    rng = np.random.default_rng(0)
    (folder / "garbage.csv").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (folder / "garbage.parquet").write_bytes(b"PAR1" + rng.integers(0, 256, 400, dtype=np.uint8).tobytes())
    (folder / "a_directory").mkdir()
    (folder / "ok.csv").write_text(table())
    (folder / "text_column.csv").write_text(table(a=lambda i: f"x{i}"))
    (folder / "nan_cell.csv").write_text(table(b=lambda i: "nan" if i == 5 else str(i)))
    (folder / "blank_cell.csv").write_text(table(b=lambda i: "" if i == 5 else str(i)))
    (folder / "inf_cell.csv").write_text(table(b=lambda i: "inf" if i == 5 else str(i)))
    (folder / "few_rows.csv").write_text(table(rows=19))
    (folder / "constant.csv").write_text(table(y=lambda i: "3"))
    (folder / "one_column.csv").write_text("y\n" + "".join(f"{i}\n" for i in range(30)))


# id -> (arguments after FAST, fragments the error line must contain)
BAD_INPUT = {
    "missing-file": (["--data", "nope.csv"], ["not found", "nope.csv"]),
    "empty-data-path": (["--data", ""], []),
    "empty-file": (["--data", "empty.csv"], ["empty"]),
    "header-only": (["--data", "header_only.csv"], ["rows"]),
    "binary-garbage": (["--data", "garbage.csv"], ["cannot read", "garbage.csv"]),
    "garbage-parquet": (["--data", "garbage.parquet"], ["cannot read", "garbage.parquet"]),
    "directory": (["--data", "a_directory"], ["directory"]),
    "non-numeric-column": (["--data", "text_column.csv"], ["'a'", "not numeric"]),
    "nan-cell": (["--data", "nan_cell.csv"], ["missing or infinite", "'b'"]),
    "inf-cell": (["--data", "inf_cell.csv"], ["missing or infinite", "'b'"]),
    "few-rows": (["--data", "few_rows.csv"], ["19 rows", "at least 20"]),
    "constant-target": (["--data", "constant.csv"], ["'y'", "constant"]),
    "unknown-target": (["--data", "ok.csv", "--target", "zz"], ["no column 'zz'", "a, b, y"]),
    "target-on-bundled": (["--dataset", "yacht", "--target", "zz"], ["--target"]),
    "unknown-regularizer": (
        ["--dataset", "yacht", "--regularizer", "foo"],
        ["unknown regularizer 'foo'; known: "],
    ),
    "unknown-student": (["--dataset", "yacht", "--student", "foo"], ["unknown student 'foo'; known: "]),
    "negative-lam": (["--dataset", "yacht", "--lam", "-1"], ["--lam", "'-1'"]),
    "text-lam": (["--dataset", "yacht", "--lam", "abc"], ["--lam", "'abc'"]),
    "inf-lam": (["--dataset", "yacht", "--lam", "inf"], ["--lam"]),
    "zero-width": (["--dataset", "yacht", "--widths", "0,5"], ["--widths", "'0,5'"]),
    "text-widths": (["--dataset", "yacht", "--widths", "a,b"], ["--widths", "'a,b'"]),
    "empty-widths": (["--dataset", "yacht", "--widths", ""], ["--widths"]),
    "student-opt-no-equals": (["--dataset", "yacht", "--student-opt", "noequals"], ["KEY=VALUE", "noequals"]),
    "student-opt-unknown-key": (
        ["--dataset", "yacht", "--student-opt", "nosuch=1"],
        ["student 'tree' has no option 'nosuch'", "max_depth"],
    ),
    "student-opt-bad-value": (["--dataset", "yacht", "--student-opt", "max_depth=abc"], ["max_depth"]),
    "reg-opt-unknown-key": (["--dataset", "yacht", "--reg-opt", "nosuch=1"], ["has no option 'nosuch'"]),
    "unknown-dataset": (["--dataset", "nosuch"], ["unknown dataset 'nosuch'", "airfoil", "yacht"]),
    "dataset-and-data": (["--dataset", "yacht", "--data", "ok.csv"], ["--dataset", "--data"]),
    "cuda-missing": (["--dataset", "yacht", "--device", "cuda"], ["cuda"]),
}


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """All bad-input cases, run concurrently (each is a short process start)."""
    cwd = tmp_path_factory.mktemp("bad_input")
    _write_inputs(cwd)

    def one(case: str):
        args, _ = BAD_INPUT[case]
        out = cwd / f"out-{case}"
        # FAST comes first so the case's own --student/--regularizer/--epochs win (click: last one wins)
        return case, (jd("run", *FAST, "--out", str(out), *args, cwd=cwd), out)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, BAD_INPUT))


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2(case, bad_input_results, plugin_rows):
    if case == "cuda-missing":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    proc, out = bad_input_results[case]
    line = assert_user_error(proc, *BAD_INPUT[case][1])
    assert proc.stdout == ""
    assert not out.exists(), "a refused run must not create its run directory"
    if case == "unknown-regularizer":
        known = names(plugin_rows, "regularizer")
        assert {"jacobian", "none"} <= set(known)
        assert line == f"error: unknown regularizer 'foo'; known: {', '.join(known)}"
    if case == "unknown-student":
        known = names(plugin_rows, "student")
        assert {"gplearn", "operon", "pysr", "tree"} <= set(known)
        assert line == f"error: unknown student 'foo'; known: {', '.join(known)}"


# --------------------------------------------------------------------------- Parquet input


def test_parquet_with_named_target(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-2, 2, 80), rng.uniform(-2, 2, 80)
    frame = pd.DataFrame({"a": a, "power": 2 * a + np.sin(b) + 0.01 * rng.normal(size=80), "b": b})
    frame.to_parquet(tmp_path / "x.parquet")
    proc = jd("run", "--data", "x.parquet", "--target", "power", *FAST, "--json", "--out", "r", cwd=tmp_path)
    assert_ok(proc)
    metrics = json.loads(proc.stdout)
    assert metrics["baseline"] is None
    assert metrics["dataset"] == "x"
    assert metrics["formula"].startswith("power = ")
    assert metrics["rows"] == {"train": 56, "val": 12, "test": 12}
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["target"] == "power"
    assert config["features"] == ["a", "b"]
    assert config["data_file"] == "x.parquet"
    assert config["baseline"] is False
    assert not (tmp_path / "r" / "baseline").exists()


# --------------------------------------------------------------------------- listings


def test_datasets_listing(tmp_path):
    from jacdistill.data import bundled_datasets

    proc = jd("datasets", cwd=tmp_path)
    assert_ok(proc)
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:] if line.strip()}
    assert rows["airfoil"][1] == "1503"
    assert rows["yacht"][1] == "308"

    # every bundled dataset is listed, and the manifest's sizes match the bundled files
    import jacdistill

    folder = Path(jacdistill.__file__).parent / "datasets"
    manifest = bundled_datasets()
    assert set(rows) == {row["name"] for row in manifest}
    for row in manifest:
        frame = pd.read_csv(folder / row["file"])
        assert (len(frame), frame.shape[1] - 1) == (row["rows"], row["features"]), row["name"]
        assert frame.columns[-1] == row["target"], row["name"]
        assert rows[row["name"]][1:4] == [str(row["rows"]), str(row["features"]), row["target"]]


def test_plugins_listing(tmp_path, plugin_rows):
    assert isinstance(plugin_rows, list)
    for row in plugin_rows:
        assert set(row) == {"kind", "name", "source", "available", "reason"}
        assert (row["reason"] is None) == row["available"]
    by_name = {(row["kind"], row["name"]): row for row in plugin_rows}
    for key in [
        ("regularizer", "jacobian"),
        ("regularizer", "none"),
        ("student", "tree"),
        ("student", "gplearn"),
        ("student", "operon"),
        ("student", "pysr"),
    ]:
        assert by_name[key]["source"] == "jacdistill", key
    for key in [("regularizer", "jacobian"), ("regularizer", "none"), ("student", "tree")]:
        assert by_name[key]["available"] is True, key
    pysr = by_name[("student", "pysr")]
    if not pysr["available"]:
        assert "julia" in pysr["reason"].lower() or "pysr" in pysr["reason"].lower()

    text = jd("plugins", cwd=tmp_path)
    assert_ok(text)
    for kind, name in by_name:
        assert any(line.split()[:2] == [kind, name] for line in text.stdout.splitlines()), (kind, name)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_metrics(tmp_path):
    def start(out: str, seed: str):
        return jd(
            "run",
            "--dataset",
            "yacht",
            "--regularizer",
            "none",
            "--student",
            "tree",
            "--epochs",
            "10",
            "--seed",
            seed,
            "--json",
            "--out",
            out,
            cwd=tmp_path,
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        first, second, other = pool.map(lambda a: start(*a), [("a", "7"), ("b", "7"), ("c", "8")])
    for proc in (first, second, other):
        assert_ok(proc)
    m1, m2, m3 = (json.loads(p.stdout) for p in (first, second, other))
    assert m1["seed"] == 7 and m3["seed"] == 8
    assert without_timings(m1) == without_timings(m2)
    assert (tmp_path / "a" / "formula.txt").read_text() == (tmp_path / "b" / "formula.txt").read_text()
    # the seed matters: another seed gives another split and another teacher
    assert without_timings(m1) != without_timings(m3)


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_interrupt_keeps_finished_files_only(tmp_path, interruptible):
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [
            str(JACDISTILL),
            "run",
            "--dataset",
            "yacht",
            "--regularizer",
            "none",
            "--student",
            "tree",
            "--epochs",
            "100000",
            "--patience",
            "100000",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "config.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "config.json never appeared"
            time.sleep(0.05)
        time.sleep(1.0)  # well into teacher training
        assert proc.poll() is None, "finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    shown = f"rc={proc.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert proc.returncode == 130, shown
    assert "Traceback" not in stdout + stderr, shown
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == ["error: interrupted; finished files are kept"], shown
    assert {p.name for p in out.iterdir()} == {"config.json", "status.json"}  # no metrics.json, no temp files
    assert json.loads((out / "status.json").read_text())["state"] == "interrupted"
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 100000

    # an interrupted run directory is not a finished run: it can be reused
    again = jd("run", "--dataset", "yacht", *FAST, "--json", "--out", str(out), cwd=tmp_path)
    assert_ok(again)
    assert json.loads((out / "config.json").read_text())["epochs"] == 5
    assert json.loads(again.stdout)["regularizer"] == "none"
    assert not list(out.rglob("*.tmp"))


# --------------------------------------------------------------------------- jacdistill bench

TINY_KERNEL = ("bench", "kernel", "--interpret", "--batch", "40", "--net", "6-16-12-1")


@pytest.mark.skipif(__import__("importlib").util.find_spec("triton") is None, reason="needs triton")
def test_bench_writes_a_file_only_where_out_says(tmp_path):
    """``bench`` comes from the benchmarks plugin; without --out it prints and writes nothing."""
    work, results = tmp_path / "work", tmp_path / "elsewhere" / "results"
    work.mkdir()
    printed = jd(*TINY_KERNEL, "--json", cwd=work, timeout=300)
    assert_ok(printed)
    shown = json.loads(printed.stdout)
    assert shown["file"] is None and shown["device"] == "cpu (triton interpreter)"
    assert {row["method"] for row in shown["rows"]} >= {"triton", "eager_double_backward"}
    assert not list(work.iterdir()), list(work.rglob("*"))  # nothing relative to the working dir

    written = jd(*TINY_KERNEL, "--out", str(results), cwd=work, timeout=300)
    assert_ok(written)
    assert written.stdout.splitlines()[0] == "device: cpu (triton interpreter)"
    assert written.stdout.splitlines()[-1] == f"written to {results / 'kernel_jacnorm-cpu.json'}"
    saved = json.loads((results / "kernel_jacnorm-cpu.json").read_text())
    assert saved["benchmark"] == "kernel_jacnorm" and saved["settings"]["interpret"] is True
    assert len(saved["rows"]) == len(shown["rows"])
    assert not list(work.iterdir())


def test_bench_help_says_where_results_go(tmp_path):
    for command in ("step", "kernel", "tuners"):
        proc = jd("bench", command, "--help", cwd=tmp_path)
        assert_ok(proc)
        text = " ".join(proc.stdout.split())
        assert "--out DIR" in text and "without --out the table is printed and nothing is written" in text
        assert "benchmarks/results" not in text
    import torch

    if not torch.cuda.is_available():  # no GPU here: a user error, not a traceback
        assert_user_error(jd("bench", "kernel", cwd=tmp_path), "bench kernel needs a CUDA GPU", "--interpret")
    assert not list(tmp_path.iterdir())
