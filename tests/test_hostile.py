"""Hostile input for every command: malformed options, files, configs and sweep directories.

Each case runs the real ``jacdistill`` console script and must be refused BEFORE any training:
exit 2, exactly one non-empty ``error: …`` line on stderr, no traceback, and no run or sweep
directory left behind. The cases run concurrently (each is mostly a process start). Then the other
side of the error boundary: an unexpected error inside a plugin is exit 1 with one line naming a
log file that holds the traceback, and ``--debug`` shows the traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

JACDISTILL = Path(sys.executable).with_name("jacdistill")
RUN = ("run", "--regularizer", "none", "--student", "tree", "--epochs", "1", "--no-baseline")
JACOBIAN = ("run", "--regularizer", "jacobian", "--student", "tree", "--epochs", "1", "--no-baseline")
TUNE = ("tune", "--student", "tree", "--epochs", "1")
SWEEP = ("sweep", "--datasets", "yacht", "--students", "tree", "--seeds", "0", "--epochs", "1")
OUT = "{out}"  # replaced by the case's own output folder, which must not exist afterwards
NO_CUDA = not torch.cuda.is_available()


def jd(*args: str, cwd: Path, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    assert JACDISTILL.exists(), f"console script missing: {JACDISTILL} (pip install -e .)"
    return subprocess.run(
        [str(JACDISTILL), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def shown(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, one non-empty stderr line starting with 'error:', no traceback; returns that line."""
    assert "Traceback" not in proc.stdout + proc.stderr, shown(proc)
    assert proc.returncode == 2, shown(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown(proc)
    assert lines[0].startswith("error: "), shown(proc)
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), shown(proc)
    return lines[0]


# --------------------------------------------------------------------------- the inputs


def table(rows: int = 30, header: str = "a,b,y", a=str, b=lambda i: str(2 * i), y=lambda i: str(i % 7)):
    return f"{header}\n" + "".join(f"{a(i)},{b(i)},{y(i)}\n" for i in range(rows))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def write_inputs(folder: Path) -> None:
    files = {
        "dup_columns.csv": table(header="a,a,y"),
        "huge_target.csv": table(y=lambda i: f"{1 + i / 100}e307"),
        "huge_feature.csv": table(b=lambda i: f"{i % 5}e200"),
        "datasets_number.toml": "datasets = 5\n",
        "teacher_bogus.toml": "teacher = {bogus = 1}\n",
        "teacher_huge.toml": "teacher = {widths = [1000000, 1000000]}\n",
        "tuner_options_text.toml": 'tuner_options = "x"\n',
        "student_options_stranger.toml": "[student_options.operon]\ngenerations = 5\n",
        "seeds_float.toml": "seeds = [1.5]\n",
        "lam_nan.toml": "lam = nan\n",
        "tuner_with_lam.toml": 'lam = 0.1\ntuner = "grid"\n',
        "deep.toml": f"a = {nested(5000)}\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "binary.toml").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.array(np.arange(30.0))
    pq.write_table(
        pa.table([column, column, pa.array(np.arange(30.0) % 7)], names=["a", "a", "y"]),
        folder / "dup.parquet",
    )

    trial = {"dataset": "yacht", "student": "tree", "arm": "baseline", "seed": 0}
    for name, trial_text, settings in [
        ("deep_trial", f'{{"dataset": {nested(100_000)}}}', None),
        ("deep_settings", json.dumps(trial), f'{{"datasets": {nested(100_000)}}}'),
        (
            "settings_types",
            json.dumps(trial),
            json.dumps({"datasets": 5, "students": ["tree"], "seeds": [0]}),
        ),
    ]:
        (folder / name / "trials").mkdir(parents=True)
        (folder / name / "trials" / "t.json").write_text(trial_text)
        if settings is not None:
            (folder / name / "sweep.json").write_text(settings)
    (folder / "a_file").write_text("not a directory\n")


def unwritable_dir(folder: Path) -> str | None:
    """An existing folder in which creating a file fails (a read-only one), or None."""
    locked = folder / "read_only"
    locked.mkdir(exist_ok=True)
    locked.chmod(0o555)
    for candidate in (locked, Path("/sys/kernel"), Path("/proc/self")):
        try:
            (candidate / ".jacdistill-probe").write_text("")
        except OSError:
            return str(candidate)
        (candidate / ".jacdistill-probe").unlink()
    return None


# --------------------------------------------------------------------------- the cases

# id -> (arguments, fragments the error line must contain, why it may be skipped or None)
CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    # run: numbers
    "run-lr-nan": ((*RUN, "--lr", "nan"), ("--lr", "finite"), None),
    "run-lr-inf": ((*RUN, "--lr", "inf"), ("--lr", "finite"), None),
    "run-lr-minus-inf": ((*RUN, "--lr", "-inf"), ("--lr",), None),
    "run-lr-zero": ((*RUN, "--lr", "0"), ("--lr",), None),
    "run-lam-nan": ((*JACOBIAN, "--lam", "nan"), ("--lam",), None),
    "run-seed-negative": ((*RUN, "--seed", "-1"), ("--seed", "2147483647"), None),
    "run-seed-2**32": ((*RUN, "--seed", str(2**32)), ("--seed",), None),
    "run-seed-2**31": ((*RUN, "--seed", str(2**31)), ("--seed",), None),
    "run-seed-2**64": ((*RUN, "--seed", str(2**64)), ("--seed",), None),
    "run-seed-text": ((*RUN, "--seed", "1.5"), ("--seed",), None),
    "run-epochs-zero": ((*RUN, "--epochs", "0"), ("--epochs",), None),
    "run-lam-negative": ((*JACOBIAN, "--lam", "-0.5"), ("--lam",), None),
    "run-reg-every-zero": ((*JACOBIAN, "--reg-every", "0"), ("--reg-every",), None),
    "run-widths-empty-item": ((*RUN, "--widths", "8,,8"), ("--widths",), None),
    "run-batch-size-negative": ((*RUN, "--batch-size", "-4"), ("--batch-size",), None),
    "run-patience-zero": ((*RUN, "--patience", "0"), ("--patience",), None),
    "run-jobs-absurd": ((*RUN, "--jobs", "100000"), ("--jobs",), None),
    "run-threads-absurd": ((*RUN, "--threads", str(2**31)), ("--threads",), None),
    "run-student-rows-zero": ((*RUN, "--student-rows", "0"), ("--student-rows",), None),
    "run-activation-bogus": ((*RUN, "--activation", "sigmoid"), ("--activation",), None),
    "run-widths-negative": ((*RUN, "--widths", "8,-1"), ("--widths",), None),
    # run: devices
    "run-device-foo": ((*RUN, "--device", "foo"), ("device 'foo'",), None),
    "run-device-meta": ((*RUN, "--device", "meta"), ("device 'meta'", "cpu, cuda"), None),
    "run-device-empty": ((*RUN, "--device", ""), ("device",), None),
    "run-device-cpu-1": ((*RUN, "--device", "cpu:1"), ("device 'cpu:1'",), None),
    "run-device-cuda": (
        (*RUN, "--device", "cuda"),
        ("cuda", "not available"),
        None if NO_CUDA else "CUDA here",
    ),
    "run-device-cuda-99": ((*RUN, "--device", "cuda:99"), ("cuda:99",), None),
    # run: sizes that cannot fit in memory
    "run-widths-huge": ((*RUN, "--widths", "1000000,1000000"), ("widths", "GiB"), None),
    # run: options this run would ignore, and plugin options
    "run-tuner-unknown-fixed-lam": (
        (*JACOBIAN, "--lam", "0.1", "--tuner", "foo"),
        ("--tuner", "unused"),
        None,
    ),
    "run-tuner-opt-fixed-lam": (
        (*JACOBIAN, "--lam", "0.1", "--tuner-opt", "bogus=1"),
        ("--tuner-opt", "unused", "--lam"),
        None,
    ),
    "run-tuner-with-none": ((*RUN, "--tuner", "grid"), ("--tuner", "--regularizer none"), None),
    "run-lam-with-none": ((*RUN, "--lam", "0.5"), ("--lam", "--regularizer none"), None),
    # run: data files
    "run-duplicate-columns": ((*RUN, "--data", "dup_columns.csv"), ("'a'", "twice"), None),
    "run-duplicate-parquet": ((*RUN, "--data", "dup.parquet"), ("dup.parquet",), None),
    "run-target-1e307": ((*RUN, "--data", "huge_target.csv"), ("column 'y'", "too large"), None),
    "run-feature-1e200": ((*RUN, "--data", "huge_feature.csv"), ("column 'b'", "too large"), None),
    "run-out-is-a-file": ((*RUN, "--out", "a_file/run"), ("a_file",), None),
    # tune
    "tune-regularizer-none": ((*TUNE, "--regularizer", "none"), ("--regularizer none",), None),
    "tune-lr-nan": ((*TUNE, "--lr", "nan"), ("--lr",), None),
    "tune-batch-size-zero": ((*TUNE, "--batch-size", "0"), ("--batch-size",), None),
    "tune-device-meta": ((*TUNE, "--device", "meta"), ("meta",), None),
    "tune-seed-huge": ((*TUNE, "--seed", str(2**40)), ("--seed",), None),
    "tune-duplicate-columns": ((*TUNE, "--data", "dup_columns.csv"), ("twice",), None),
    # sweep: the TOML config
    "sweep-toml-datasets-number": (
        ("sweep", "--config", "datasets_number.toml"),
        ("'datasets'", "got 5"),
        None,
    ),
    "sweep-toml-teacher-bogus": ((*SWEEP, "--config", "teacher_bogus.toml"), ("'bogus'",), None),
    "sweep-toml-teacher-huge": ((*SWEEP, "--config", "teacher_huge.toml"), ("GiB",), None),
    "sweep-toml-tuner-options-text": (
        ("sweep", "--config", "tuner_options_text.toml"),
        ("tuner_options",),
        None,
    ),
    "sweep-toml-student-options-stranger": (
        (*SWEEP, "--config", "student_options_stranger.toml"),
        ("'operon'", "not among"),
        None,
    ),
    "sweep-toml-seeds-float": (("sweep", "--config", "seeds_float.toml"), ("'seeds'",), None),
    "sweep-toml-lam-nan": (("sweep", "--config", "lam_nan.toml"), ("'lam'",), None),
    "sweep-toml-tuner-with-fixed-lam": ((*SWEEP, "--config", "tuner_with_lam.toml"), ("unused",), None),
    "sweep-toml-binary": (("sweep", "--config", "binary.toml"), ("cannot read config",), None),
    "sweep-toml-deeply-nested": (("sweep", "--config", "deep.toml"), ("nested too deeply",), None),
    # sweep: flags
    "sweep-student-opt-stranger": ((*SWEEP, "--student-opt", "operon.generations=5"), ("'operon'",), None),
    "sweep-duplicate-datasets": ((*SWEEP, "--datasets", "yacht,servo,yacht"), ("'yacht' twice",), None),
    "sweep-duplicate-seeds": ((*SWEEP, "--seeds", "0,1,0"), ("0 twice",), None),
    "sweep-duplicate-arms": ((*SWEEP, "--arms", "direct,baseline,direct"), ("'direct' twice",), None),
    "sweep-seed-negative": ((*SWEEP, "--seeds", "-1"), ("'seeds'",), None),
    "sweep-tuner-fixed-lam": ((*SWEEP, "--lam", "0.1", "--tuner", "foo"), ("--tuner", "unused"), None),
    "sweep-tuner-unknown": ((*SWEEP, "--tuner", "foo"), ("unknown tuner 'foo'",), None),
    "sweep-scheduler-local": (
        (*SWEEP, "--scheduler", "tcp://127.0.0.1:8786"),
        ("--scheduler", "unused"),
        None,
    ),
    "sweep-scheduler-malformed": (
        (*SWEEP, "--executor", "dask", "--scheduler", "http://x"),
        ("--scheduler", "tcp://HOST:PORT"),
        None,
    ),
    "sweep-epochs-zero": ((*SWEEP, "--epochs", "0"), ("--epochs",), None),
    "sweep-workers-zero": ((*SWEEP, "--workers", "0"), ("--workers",), None),
    "sweep-executor-bogus": ((*SWEEP, "--executor", "ray"), ("--executor",), None),
    "sweep-resume-deep-settings": ((*SWEEP, "--out", "deep_settings"), ("sweep.json", "nested"), None),
    "sweep-resume-settings-types": ((*SWEEP, "--out", "settings_types"), ("sweep.json", "'datasets'"), None),
    # report
    "report-deep-trial": (("report", "deep_trial"), ("t.json", "nested too deeply"), None),
    "report-deep-trial-json": (("report", "deep_trial", "--json"), ("t.json", "nested too deeply"), None),
    "report-deep-settings": (("report", "deep_settings"), ("sweep.json", "nested too deeply"), None),
    "report-missing": (("report", "no_such_sweep"), ("no_such_sweep",), None),
    "report-a-file": (("report", "a_file"), ("a_file",), None),
    "report-no-argument": (("report",), ("SWEEP_DIR",), None),
    # plugins, datasets
    "plugins-extra-argument": (("plugins", "foo"), ("foo",), None),
    "plugins-bogus-option": (("plugins", "--bogus"), ("--bogus",), None),
    "datasets-extra-argument": (("datasets", "yacht"), ("yacht",), None),
    "datasets-bogus-option": (("datasets", "--csv"), ("--csv",), None),
    # bench
    "bench-kernel-net-text": (("bench", "kernel", "--net", "abc"), ("--net", "abc"), None),
    "bench-kernel-net-zero": (("bench", "kernel", "--net", "4-0-1"), ("--net", "4-0-1"), None),
    "bench-step-cuda": (("bench", "step", "--device", "cuda"), ("cuda",), None if NO_CUDA else "CUDA here"),
    "bench-step-meta": (("bench", "step", "--device", "meta"), ("--device", "meta"), None),
    "bench-tuners-duplicate-seeds": (("bench", "tuners", "--seeds", "1,1"), ("1 twice",), None),
    "bench-tuners-unknown-dataset": (("bench", "tuners", "--datasets", "nope"), ("'nope'",), None),
    "bench-unknown-command": (("bench", "nosuch"), ("nosuch",), None),
    # the global options
    "debug-keeps-user-errors-one-line": (("--debug", *RUN, "--lr", "nan"), ("--lr",), None),
    "unknown-command": (("nosuch",), ("nosuch",), None),
    "unknown-global-option": (("--verbose", "datasets"), ("--verbose",), None),
}
OUT_COMMANDS = ("run", "tune", "sweep")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every case, run concurrently in one folder of inputs."""
    cwd = tmp_path_factory.mktemp("hostile")
    write_inputs(cwd)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(cwd)}

    def one(case: str):
        args, _, skip = CASES[case]
        out = cwd / f"out-{case}"
        if skip:
            return case, (None, out)
        command = next((a for a in args if not a.startswith("-")), "")
        extra = ("--out", str(out)) if command in OUT_COMMANDS and "--out" not in args else ()
        try:
            return case, (jd(*args, *extra, cwd=cwd, env=env, timeout=150), out)
        except subprocess.TimeoutExpired:  # accepted, and training: a failure, reported as one
            return case, (subprocess.CompletedProcess(args, -9, "", "timed out: it ran"), out)

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(pool.map(one, CASES))
    assert not list(cwd.glob("jacdistill-error-*.log")), "a hostile input was an internal error"
    return done


def test_there_are_enough_cases_for_every_command():
    commands = {next(a for a in args if not a.startswith("-")) for args, _, _ in CASES.values()}
    assert {"run", "tune", "sweep", "report", "plugins", "datasets", "bench"} <= commands
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_line_exit_2(case, results):
    proc, out = results[case]
    if proc is None:
        pytest.skip(CASES[case][2])
    assert_user_error(proc, *CASES[case][1])
    assert proc.stdout == "", shown(proc)
    assert not out.exists(), "refused input must not leave a run or sweep directory"


def test_unwritable_output_folder_is_one_line_exit_2(tmp_path):
    folder = unwritable_dir(tmp_path)
    if folder is None:
        pytest.skip("every folder is writable here")
    line = assert_user_error(jd(*RUN, "--dataset", "yacht", "--out", folder, cwd=tmp_path), folder)
    assert "(PermissionError)" in line or "(OSError)" in line or "Error)" in line, line


# --------------------------------------------------------------------------- internal errors

BOOM = '''
import errno

import numpy as np
import sympy

from jacdistill import Student, hookimpl


class Boom(Student):
    """Fails in fit, as told: a bug (RuntimeError), no memory, or a full disk."""

    name = "boom"
    defaults = {"failure": "bug"}

    def fit(self, X, y):
        if self.options["failure"] == "memory":
            raise MemoryError("Unable to allocate 7.28 TiB for an array")
        if self.options["failure"] == "disk":
            raise OSError(errno.ENOSPC, "No space left on device", "/full/disk/formula.txt")
        raise RuntimeError("boom: a bug in the student")

    def predict(self, X):
        return np.zeros(len(X))

    def expression(self):
        return sympy.Integer(0)


@hookimpl
def register_students(register):
    register(Boom)
'''


@pytest.fixture(scope="module")
def boom(tmp_path_factory) -> tuple[Path, dict]:
    """A folder with the 'boom' student installed as an outside plugin, and its environment."""
    root = tmp_path_factory.mktemp("boom")
    (root / "jd_boom.py").write_text(textwrap.dedent(BOOM))
    info = root / "jd_boom-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jd-boom\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[jacdistill]\nboom = jd_boom\n")
    (root / "tmp").mkdir()
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return root, {**os.environ, "PYTHONPATH": path, "TMPDIR": str(root / "tmp"), "OMP_NUM_THREADS": "1"}


BOOM_RUN = (*RUN, "--dataset", "yacht", "--student", "boom", "--widths", "4")


def test_internal_error_is_one_line_with_a_log_of_the_traceback(boom):
    root, env = boom
    proc = jd(*BOOM_RUN, "--out", "r1", cwd=root, env=env)
    assert proc.returncode == 1, shown(proc)
    assert "Traceback" not in proc.stdout + proc.stderr, shown(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: internal error"), shown(proc)
    assert "RuntimeError: boom: a bug in the student" in lines[0], shown(proc)
    match = re.search(r"traceback in (\S+\.log)", lines[0])
    assert match, shown(proc)
    log = Path(match.group(1))
    assert log.parent == root / "tmp" and log.name.startswith("jacdistill-error-"), log
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and 'raise RuntimeError("boom' in text, text
    assert "jd_boom.py" in text and "--student boom" in text, text


def test_debug_shows_the_traceback(boom):
    root, env = boom
    proc = jd("--debug", *BOOM_RUN, "--out", "r2", cwd=root, env=env)
    assert proc.returncode == 1, shown(proc)
    assert "Traceback (most recent call last)" in proc.stderr and "jd_boom.py" in proc.stderr, shown(proc)
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: internal error (RuntimeError"), shown(proc)


@pytest.mark.parametrize(
    "failure, fragments",
    [("memory", ("out of memory", "MemoryError")), ("disk", ("No space left on device", "/full/disk"))],
)
def test_resource_and_file_system_failures_are_user_errors(boom, failure, fragments, tmp_path):
    root, env = boom
    args = (*BOOM_RUN, "--student-opt", f"failure={failure}", "--out", f"r-{failure}")
    assert_user_error(jd(*args, cwd=root, env={**env, "TMPDIR": str(tmp_path)}), *fragments)
    assert not list(tmp_path.glob("jacdistill-error-*")), "an expected failure is not a bug to log"


# --------------------------------------------------------------------------- in process


@pytest.mark.parametrize(
    "exc, fragments",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/run/teacher.pt"),
            ("No space", "teacher.pt"),
        ),
        (OSError(errno.EROFS, "Read-only file system", "/ro/runs"), ("Read-only", "/ro/runs")),
        (PermissionError(errno.EACCES, "Permission denied", "/x"), ("Permission denied", "/x")),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), ("Connection refused",)),
        (TimeoutError("Timed out trying to connect to tcp://10.0.0.5:8786"), ("Timed out", "8786")),
        (MemoryError(), ("out of memory",)),
        (
            RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: 10 bytes"),
            ("out of memory",),
        ),
    ],
)
def test_expected_failures_are_classified_as_user_errors(exc, fragments):
    from jacdistill.cli import user_error

    message = user_error(exc)
    assert message is not None and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("x"), AssertionError(), RecursionError()])
def test_bugs_are_not_classified_as_user_errors(exc):
    from jacdistill.cli import user_error

    assert user_error(exc) is None


@pytest.mark.parametrize(
    "params, says",
    [
        ({"lr": float("nan")}, "lr must be"),
        ({"lr": float("inf")}, "lr must be"),
        ({"seed": -1}, "seed must be an integer in [0, 2147483647]"),
        ({"seed": 2**32}, "seed must be"),
        ({"jitter": float("nan")}, "jitter must be"),
        ({"augment": -1.0}, "augment must be"),
        ({"epochs": 0}, "epochs must be"),
        ({"widths": (8, 0)}, "widths must be"),
        ({"activation": "sigmoid"}, "activation must be"),
        ({"validation_fraction": 1.5}, "validation_fraction must be"),
        ({"batch_teachers": "yes"}, "batch_teachers must be"),
        ({"device": "meta"}, "device 'meta'"),
        ({"device": "foo"}, "device 'foo'"),
        ({"widths": (1_000_000, 1_000_000)}, "GiB"),
        ({"lam": 0.1, "tuner": "foo"}, "unknown tuner 'foo'"),  # checked though a fixed λ leaves it unused
        ({"lam": 0.1, "tuner_options": {"bogus": 1}}, "has no option 'bogus'"),
        ({"tuner_options": "x"}, "tuner_options must be"),
    ],
)
def test_python_api_checks_the_same(params, says):
    from jacdistill.estimator import Distiller
    from jacdistill.options import JacdistillError

    with pytest.raises(JacdistillError) as info:
        Distiller(student="tree", **params).resolve_plugins()
    assert says in str(info.value) and "\n" not in str(info.value)


def test_python_api_refuses_values_that_do_not_standardize():
    from jacdistill.estimator import Distiller
    from jacdistill.options import JacdistillError

    X = np.random.default_rng(0).normal(size=(40, 2))
    X[:, 1] *= 1e200
    with pytest.raises(JacdistillError, match="column 1 .* too large"):
        Distiller(student="tree", lam=0.0, epochs=1).fit(X, X[:, 0])


# --------------------------------------------------------------------------- more, in process


@pytest.mark.parametrize(
    "toml, says",
    [
        ('datasets = "yacht"', "sweep setting 'datasets' must be a list of names, got 'yacht'"),
        ("datasets = [1, 2]", "sweep setting 'datasets' must be a list of names"),
        ("arms = \"direct\"", "sweep setting 'arms' must be a list of names"),
        ("seeds = [true]", "sweep setting 'seeds' must be a list of integers in [0, 2147483647]"),
        ("seeds = [4294967296]", "sweep setting 'seeds' must be"),
        ('lam = "0.1"', "sweep setting 'lam' must be 'auto' or a finite number >= 0"),
        ("lam = -inf", "sweep setting 'lam' must be"),
        ("augment = inf", "sweep setting 'augment' must be"),
        ("jitter = -1", "sweep setting 'jitter' must be"),
        ("regularizer = 3", "sweep setting 'regularizer' must be a name"),
        ('drop_terms = "yes"', "sweep setting 'drop_terms' must be true or false, got 'yes'"),
        ("teacher = {drop_terms = true}", "sweep setting 'teacher' cannot set 'drop_terms'"),
        ("student_options = {tree = 3}", "sweep setting 'student_options' must be a table of tables"),
        ("teacher = {seed = 3}", "sweep setting 'teacher' cannot set 'seed'"),
        ("teacher = {lam = 3}", "sweep setting 'teacher' cannot set 'lam'"),
        ("seed_list = [1]", "unknown sweep setting 'seed_list'"),
        ("datasets = [", "cannot read config"),
        ('datasets = ["yacht", "yacht"]', "datasets lists 'yacht' twice"),
        ("arms = []", "a sweep needs at least one of arms"),
        ('tuner_options = {lo = 0.1}\nlam = 0.5', "the config's 'tuner_options' is unused when lam is fixed"),
        ('teacher = {epochs = "many"}', "epochs must be an integer >= 1, got 'many'"),
        ("teacher = {widths = [8, 0]}", "widths must be"),
        ('teacher = {device = "meta"}', "device 'meta'"),
        ("[student_options.tree]\nmax_depth = 0", "option 'max_depth' must be"),
        ("[regularizer_options]\nbogus = 1", "has no option 'bogus'"),
    ],
)
def test_sweep_config_is_checked_before_any_worker_starts(tmp_path, toml, says):
    from jacdistill import sweep
    from jacdistill.options import JacdistillError

    (tmp_path / "c.toml").write_text(toml + "\n")
    flags = {"students": ("tree",), "seeds": (0,)} | ({} if "datasets" in toml else {"datasets": ("yacht",)})
    with pytest.raises(JacdistillError) as info:
        sweep.check(sweep.spec_from(str(tmp_path / "c.toml"), flags, {}, {}))
    assert says in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "flags, tuner_opts, student_opts, says",
    [
        ({"seeds": (2**32,)}, {}, {}, "sweep setting 'seeds' must be"),
        ({"students": ("tree", "tree")}, {}, {}, "students lists 'tree' twice"),
        ({"arms": ()}, {}, {}, "a sweep needs at least one of arms"),
        ({"lam": 0.1}, {"bogus": 1}, {}, "--tuner-opt is unused when lam is fixed"),
        ({}, {}, {"tree.": 3}, "--student-opt expects STUDENT.KEY=VALUE"),
        ({}, {}, {"gplearn.generations": 3}, "student options for 'gplearn'"),
    ],
)
def test_sweep_flags_are_checked(flags, tuner_opts, student_opts, says):
    from jacdistill import sweep
    from jacdistill.options import JacdistillError

    given = {"datasets": ("yacht",), "students": ("tree",), "seeds": (0,), "tuner": None, "lam": None} | flags
    with pytest.raises(JacdistillError, match=re.escape(says)):
        sweep.spec_from(None, given, tuner_opts, student_opts)


@pytest.mark.parametrize(
    "text, says",
    [
        (table(header="a,y,y"), "column name 'y' appears twice"),
        (table(header='"x","x",y'), "column name 'x' appears twice"),
        (table(header="1,1.0,y"), None),  # different as written: both kept
        (table(header="a,,y"), "column 2 has no name"),
        (table(b=lambda i: f"{i % 5}e-200"), "column 'b' has values up to 4e-200, too small"),
        (table(y=lambda i: f"-{1 + i / 100}e307"), "column 'y' has values up to 1.29e+307, too large"),
        (table(a=lambda i: f"{i}e160"), "column 'a'"),
    ],
)
def test_data_files_that_would_give_wrong_results(tmp_path, text, says):
    from jacdistill.data import load_file
    from jacdistill.options import JacdistillError

    (tmp_path / "d.csv").write_text(text)
    if says is None:
        assert load_file(tmp_path / "d.csv").feature_names == ["1", "1.0"]
        return
    with pytest.raises(JacdistillError) as info:
        load_file(tmp_path / "d.csv")
    assert says in str(info.value) and "\n" not in str(info.value)
