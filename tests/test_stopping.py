"""A sweep stops when told: Ctrl-C or SIGTERM to its main process (or its process group) ends it
within seconds with one line saying what is kept, and its workers die with it however it dies.
Real ``jacdistill sweep`` processes, each in a session of its own, and real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals, sessions and /proc")

JACDISTILL = str(Path(sys.executable).with_name("jacdistill"))
GRID = ("--datasets", "yacht,servo", "--students", "tree", "--seeds", "0,1,2,3", "--epochs", "200")
TRIALS = 2 * 4 * 5  # datasets × seeds × arms
STOP_SECONDS = 15


def start(out: Path, *extra: str, preexec_fn=None) -> subprocess.Popen:
    """The sweep in a session of its own (its id is the main process's pid), once it has written
    a trial file."""
    process = subprocess.Popen(
        [JACDISTILL, "sweep", *GRID, "--workers", "2", *extra, "--out", str(out)],
        cwd=out.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    deadline = time.monotonic() + 300
    while not list((out / "trials").glob("*.json")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no trial file after 300 s"
        time.sleep(0.05)
    assert process.poll() is None, "the sweep finished before it could be stopped"
    return process


def alive_in_session(session: int) -> list[int]:
    """The live processes of a session. A zombie is dead, only not yet reaped (this machine's
    init may never reap an orphan), so it does not count."""
    try:
        import psutil
    except ImportError:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:  # after the command's ")": state, ppid, process group, session, ...
                state, _, _, sid = stat.read_text().rsplit(")", 1)[1].split()[:4]
            except OSError:  # gone meanwhile
                continue
            if int(sid) == session and state != "Z":
                found.append(int(stat.parent.name))
        return found
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except (psutil.Error, OSError):  # gone meanwhile
            pass
    return found


def assert_session_ends(session: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while alive_in_session(session):
        assert time.monotonic() < deadline, f"still alive: {alive_in_session(session)}"
        time.sleep(0.1)


def trial_files(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (out / "trials").glob("*.json")}


@pytest.mark.parametrize(
    "signum,executor,group",
    [
        (signal.SIGINT, "local", False),
        (signal.SIGTERM, "local", False),
        (signal.SIGINT, "local", True),  # Ctrl-C at a terminal reaches the whole group
        (signal.SIGINT, "dask", False),
    ],
    ids=["sigint", "sigterm", "sigint-group", "dask-sigint"],
)
def test_a_signal_stops_the_sweep_within_seconds(tmp_path, interruptible, signum, executor, group):
    out = tmp_path / "s"
    process = start(out, "--executor", executor, preexec_fn=interruptible)
    sent = time.monotonic()
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        stdout, stderr = process.communicate(timeout=STOP_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    seconds = time.monotonic() - sent
    shown = f"rc={process.returncode} after {seconds:.1f} s\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert process.returncode == 128 + signum, shown  # 130 for SIGINT, 143 for SIGTERM
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    match = re.fullmatch(
        r"sweep stopped: (\d+) trials finished, (\d+) kept in (.+); rerun to resume", lines[0]
    )
    assert match and match[3] == str(out), shown
    assert_session_ends(process.pid)
    kept = trial_files(out)  # every file there is whole JSON
    assert 1 <= len(kept) < TRIALS and int(match[1]) == int(match[2]) == len(kept), shown


def test_a_stopped_sweep_resumes_and_finishes(tmp_path, interruptible):
    out = tmp_path / "s"
    process = start(out, preexec_fn=interruptible)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 130
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.json")}
    resumed = subprocess.run(
        [JACDISTILL, "sweep", *GRID, "--workers", "2", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} already finished, {TRIALS} in all" in resumed.stdout
    assert len(trial_files(out)) == TRIALS
    assert all((out / "trials" / name).stat().st_mtime_ns == stamp for name, stamp in kept.items())
    assert not list((out / "trials").glob(".*.tmp"))


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_workers_die_with_a_killed_main_process(tmp_path, executor):
    """kill -9 (or the OOM killer) of the main process alone: its workers must not live on."""
    process = start(tmp_path / "s", "--executor", executor)
    assert len(alive_in_session(process.pid)) >= 3  # the main process and two workers
    process.kill()
    process.communicate()
    assert_session_ends(process.pid, seconds=5)
    trial_files(tmp_path / "s")


def test_an_unreachable_scheduler_fails_in_seconds(tmp_path):
    from jacdistill.options import JacdistillError
    from jacdistill.sweep import SCHEDULER_TIMEOUT, SweepSpec, execute

    spec = SweepSpec(datasets=("yacht",), students=("tree",), seeds=(0,))
    started = time.monotonic()
    with pytest.raises(JacdistillError, match="cannot connect to the Dask scheduler tcp://127.0.0.1:1"):
        execute(spec, tmp_path, "dask", scheduler="tcp://127.0.0.1:1")
    assert time.monotonic() - started < SCHEDULER_TIMEOUT + 5
    proc = subprocess.run(
        [JACDISTILL, "sweep", *GRID, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--out", "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "cannot connect" in lines[0], proc.stderr
