"""``jacdistill bench e2e --quick``: the end-to-end benchmark's smoke run, as a user runs it.

Only the shape of what it prints and writes is checked, never a time: speed depends on the
machine and on whatever else runs beside the tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

JACDISTILL = Path(sys.executable).with_name("jacdistill")
SECTIONS = {"grid", "run", "tuners", "sweep", "rows"}


def test_quick_e2e_prints_the_table_and_writes_results_and_plot(tmp_path):
    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [str(JACDISTILL), "bench", "e2e", "--quick", "--out", str(out)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    shown = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, shown
    assert "Traceback" not in proc.stderr, shown

    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| section"))
    cells = {cell.strip() for cell in header.split("|")}
    assert {"section", "case", "mode", "seconds", "teacher_s", "student_s"} <= cells, shown
    assert any(line.startswith("|") and "ratio" in line for line in lines), shown
    assert "grid: batched 8 / one teacher" in proc.stdout, shown
    assert lines[-1] == f"written to {out / 'e2e-cpu.json'}", shown

    saved = json.loads((out / "e2e-cpu.json").read_text())
    assert saved["benchmark"] == "e2e" and saved["machine"]["device"] == "cpu"
    assert {row["section"] for row in saved["rows"]} == SECTIONS
    assert SECTIONS <= set(saved["summary"]), saved["summary"]
    assert set(saved["summary"]["tuners"]) == {"grid", "constrained", "adaptive", "optuna"}
    for section in ("grid", "run", "tuners", "sweep"):  # each measured both ways
        modes = {row["mode"] for row in saved["rows"] if row["section"] == section}
        assert {"batched", "sequential"} <= modes, (section, modes)
    assert {"one"} <= {row["mode"] for row in saved["rows"] if row["section"] == "grid"}
    for row in saved["rows"]:
        if row["section"] == "tuners":
            assert isinstance(row["same_lam"], bool)
    assert "student_rows_default" in saved["settings"] and saved["settings"]["torch_threads"] == 1

    plot = out / "e2e-rows.png"
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(work.iterdir())  # nothing written outside --out
