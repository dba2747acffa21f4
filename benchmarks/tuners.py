"""The λ tuners against the paper's grid: chosen λ, student test R² and wall time per dataset.

Each (dataset, seed) is fitted once per tuner on the same 70/15/15 split, plus once with a fixed
λ as the cost of "one regularized run". Torch runs on one thread and cost is CPU seconds of this
process (wall seconds are recorded too): CPU time does not move when other work shares the
machine, so the ratios between tuners stay honest. Run: ``python benchmarks/tuners.py`` or
``jacdistill bench tuners [--json]``.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from jacdistill import evaluation
from jacdistill.data import load_bundled

DATASETS = ("yacht", "auto_mpg", "real_estate", "concrete")
SEEDS = (0, 1, 2)
TUNERS = {"grid": {}, "constrained": {}, "adaptive": {}, "optuna": {"n_trials": 8}}
FIXED_LAM = 1e-3  # the reference "one regularized run"
STUDENT = ("operon", {"generations": 50, "population_size": 300, "max_evaluations": 50_000})


def measure(datasets=DATASETS, seeds=SEEDS, tuners=TUNERS, log=lambda line: None) -> list[dict]:
    """One row per (dataset, seed, method): λ, test R² of teacher and student, seconds, compute."""
    torch.set_num_threads(1)
    evaluation.fit_and_score(load_bundled(datasets[0]), dict(lam=0.0, student="tree", epochs=2))  # warm-up
    rows = []
    for name in datasets:
        data = load_bundled(name)
        for seed in seeds:
            methods = [("fixed", FIXED_LAM, {})] + [(t, "auto", opts) for t, opts in tuners.items()]
            for method, lam, options in methods:
                params = dict(
                    regularizer="jacobian",
                    lam=lam,
                    tuner=method if lam == "auto" else "constrained",
                    tuner_options=options,
                    student=STUDENT[0],
                    student_options=STUDENT[1],
                    seed=seed,
                )
                started, cpu_started = time.perf_counter(), time.process_time()
                metrics = evaluation.fit_and_score(data, params).metrics
                seconds, wall = time.process_time() - cpu_started, time.perf_counter() - started
                compute = metrics.get("tuning", {}).get(
                    "compute", {"teacher_trainings": 1, "student_fits": 1}
                )
                rows.append(
                    {
                        "dataset": name,
                        "seed": seed,
                        "tuner": method,
                        "lam": metrics["lam"],
                        "teacher_r2_test": metrics["teacher_r2_test"],
                        "student_r2_test": metrics["student_r2_test"],
                        "seconds": seconds,
                        "wall_seconds": wall,
                        **compute,
                    }
                )
                log(
                    f"{name} seed {seed} {method:12} λ={metrics['lam']:.3g} "
                    f"student R²={metrics['student_r2_test']:.4f} {seconds:.1f} CPU s"
                )
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per dataset and tuner: median over seeds of λ, student test R² and CPU seconds, with the
    student R² difference to grid and the cost relative to grid and to the fixed-λ run."""

    def median(dataset, tuner, key):
        return statistics.median(r[key] for r in rows if r["dataset"] == dataset and r["tuner"] == tuner)

    table = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for tuner in dict.fromkeys(r["tuner"] for r in rows):
            table.append(
                {
                    "dataset": dataset,
                    "tuner": tuner,
                    "lam": median(dataset, tuner, "lam"),
                    "student_r2_test": median(dataset, tuner, "student_r2_test"),
                    "delta_r2_vs_grid": median(dataset, tuner, "student_r2_test")
                    - median(dataset, "grid", "student_r2_test"),
                    "seconds": median(dataset, tuner, "seconds"),
                    "time_vs_grid": median(dataset, tuner, "seconds") / median(dataset, "grid", "seconds"),
                    "time_vs_fixed": median(dataset, tuner, "seconds") / median(dataset, "fixed", "seconds"),
                }
            )
    for tuner in dict.fromkeys(r["tuner"] for r in table):
        mine = [r for r in table if r["tuner"] == tuner]
        table.append(
            {
                "dataset": "median",
                "tuner": tuner,
                "lam": None,
                **{
                    key: statistics.median(r[key] for r in mine)
                    for key in (
                        "student_r2_test",
                        "delta_r2_vs_grid",
                        "seconds",
                        "time_vs_grid",
                        "time_vs_fixed",
                    )
                },
            }
        )
    return table


COLUMNS = [
    ("dataset", ""),
    ("tuner", ""),
    ("lam", ".3g"),
    ("student_r2_test", ".4f"),
    ("delta_r2_vs_grid", "+.4f"),
    ("seconds", ".1f"),
    ("time_vs_grid", ".2f"),
    ("time_vs_fixed", ".2f"),
]


if __name__ == "__main__":
    from jacdistill.benchmarks.commands import run_standalone

    run_standalone("tuners", sys.argv[1:])
