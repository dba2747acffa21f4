"""What fitting the student to a subsample of the teacher-labelled rows costs in student test R²
(issue 12, ``student_rows``): the largest bundled dataset (ccpp) and a synthetic 50 000-row problem,
the default Operon student, one teacher per (dataset, seed) shared by every subsample size.

    python benchmarks/student_rows.py [--seeds 0,1] [--out DIR]

Writes ``student_rows-cpu.json`` (rows, settings, machine, versions) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from jacdistill import evaluation
from jacdistill.benchmarks import harness
from jacdistill.data import Dataset, load_bundled
from jacdistill.tables import markdown_table

SIZES = (1000, 2000, 5000, 10000, None)  # None: every row
LAM = 1e-3


def synthetic(n: int = 50_000, seed: int = 0) -> Dataset:
    """y = sin(x0) + x1·x2 + 0.5·x3² + 0.1·noise, five standard-normal features (x4 unused)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + 0.1 * rng.normal(size=n)
    return Dataset("synthetic50k", X, y, [f"x{i}" for i in range(5)], "y")


def measure(seeds: list[int]) -> list[dict]:
    rows = []
    for data in (load_bundled("ccpp"), synthetic()):
        for seed in seeds:
            params = {"lam": LAM, "student": "operon", "seed": seed, "student_rows": None}
            full = evaluation.fit_and_score(data, params)  # trains the teacher once
            teacher = [full.estimator.search_.reusable(LAM, student=False)]
            for size in (s for s in SIZES if s is None or s < full.metrics["student_rows"]):
                started = time.perf_counter()
                fitted = (
                    full
                    if size is None
                    else evaluation.fit_and_score(data, {**params, "student_rows": size}, reuse=teacher)
                )
                metrics = fitted.metrics
                rows.append(
                    {
                        "dataset": data.name,
                        "seed": seed,
                        "student_rows": metrics["student_rows"],
                        "student_r2_test": metrics["student_r2_test"],
                        "fidelity_r2_test": metrics["fidelity_r2_test"],
                        "student_seconds": metrics["timings"]["student"],
                        "wall_seconds": metrics["timings"]["total"]
                        if size is None
                        else time.perf_counter() - started,
                    }
                )
                print(rows[-1], flush=True)
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per dataset and size: median over seeds of student test R², its loss against all rows,
    and the student's seconds."""
    summary = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        full = {r["seed"]: r for r in mine if r["student_rows"] == max(m["student_rows"] for m in mine)}
        for size in dict.fromkeys(r["student_rows"] for r in mine):
            at = [r for r in mine if r["student_rows"] == size]
            summary.append(
                {
                    "dataset": dataset,
                    "student_rows": size,
                    "student_r2_test": statistics.median(r["student_r2_test"] for r in at),
                    "delta_r2_vs_all_rows": statistics.median(
                        r["student_r2_test"] - full[r["seed"]]["student_r2_test"] for r in at
                    ),
                    "student_seconds": statistics.median(r["student_seconds"] for r in at),
                }
            )
    return summary


COLUMNS = [
    ("dataset", "s"),
    ("student_rows", "d"),
    ("student_r2_test", ".4f"),
    ("delta_r2_vs_all_rows", "+.4f"),
    ("student_seconds", ".1f"),
]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = measure(seeds)
    summary = summarize(rows)
    settings = {
        "seeds": seeds,
        "sizes": list(SIZES),
        "lam": LAM,
        "student": "operon (defaults)",
        "jobs": "all cores",
    }
    path = harness.save("student_rows", rows, settings, "cpu", args.out, summary=summary)
    print(markdown_table(summary, COLUMNS))
    print(f"written to {path}")
