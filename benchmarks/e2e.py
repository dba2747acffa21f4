"""End-to-end wall time, batched against sequential teachers (issue 12): what a user waits for.

Five sections, each measured side by side in one process (torch on one thread, as the CLI's
default), batched (``batch_teachers=True``: a tuner's candidates train together as one stack) and
sequential (one after another):

1. ``grid``: an 8-λ grid's teacher training (``Search.teachers``, through the grid tuner) against
   ONE teacher with the same epochs (patience = epochs: no early stopping), airfoil, 5-64-64-1
   silu, the jacobian penalty with its default backend; the median of interleaved rounds;
2. ``run``: what ``jacdistill run`` computes (``evaluation.run``: the tuned fit and its λ = 0
   baseline) on airfoil with the default settings, with its teacher and student seconds;
3. ``tuners``: each tuner's teacher training (tree student: cheap and deterministic), with the
   chosen λ of both orders compared (they must agree);
4. ``sweep``: one sweep unit (``sweep.run_unit``), all five arms, into a temporary folder;
5. ``rows``: the tuned fit (no baseline) on 1 000 … 50 000 rows of a synthetic problem with the
   default settings but a bounded teacher; teacher, student and total seconds and their growth
   (slope of log time against log rows: 1 is linear). Sizes run smallest first, and a size whose
   projected time does not fit in what is left of ``budget`` is recorded as skipped (the two
   smallest always run, so that there is a slope).

Every measurement has its wall seconds (``seconds``: for the grid and the tuners, the wall time of
teacher training, ``Search.teacher_seconds``) and the CPU seconds of this process around the whole
call (``cpu_s``, all threads: Operon uses every core), which a busy machine moves less than wall
time. Run: ``jacdistill bench e2e [--quick] [--out DIR]`` or ``python benchmarks/e2e.py``.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from jacdistill import evaluation
from jacdistill.data import Dataset, load_bundled

GRID = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # the 8 candidates of section 1
ONE_LAM = 1e-3  # the single teacher's λ
TEACHER = {"regularizer": "jacobian", "widths": (64, 64), "activation": "silu"}  # backend: default
MODES = {"batched": True, "sequential": False}
T = TypeVar("T")
MIN_SIZES = 2  # row sizes measured whatever the budget says: a slope needs two


@dataclass(frozen=True)
class Plan:
    """How big each section is; ``FULL`` fits in about 9 minutes on 2 cores, ``QUICK`` in one."""

    dataset: str = "airfoil"
    grid_epochs: int = 100
    grid_rounds: int = 3
    run_params: dict = field(default_factory=dict)  # over the defaults: none
    tuner_params: dict = field(default_factory=lambda: {"epochs": 100, "student": "tree"})
    tuners: dict = field(
        default_factory=lambda: {
            "grid": {},
            "constrained": {},
            "adaptive": {},
            "optuna": {"n_trials": 4, "batch": 4},
        }
    )
    sweep_unit: tuple = ("yacht", "tree", 0)
    sweep_teacher: dict = field(default_factory=lambda: {"epochs": 150})
    sweep_student_options: dict = field(default_factory=dict)
    sizes: tuple[int, ...] = (1000, 2000, 5000, 10_000, 20_000, 50_000)
    rows_params: dict = field(default_factory=lambda: {"epochs": 20})
    budget: float = 540.0  # seconds for the whole benchmark; the rows section gets what is left


TINY_OPERON = {"generations": 5, "population_size": 50, "max_evaluations": 2000}
FULL = Plan()
QUICK = Plan(
    grid_epochs=3,
    grid_rounds=1,
    run_params={"epochs": 3, "student_options": TINY_OPERON},
    tuner_params={"epochs": 3, "student": "tree"},
    tuners={
        "grid": {},
        "constrained": {},
        "adaptive": {"adapt_epochs": 2},
        "optuna": {"n_trials": 2, "batch": 2},
    },
    sweep_teacher={"epochs": 3},
    sizes=(1000, 2000),
    rows_params={"epochs": 2, "student_options": TINY_OPERON},
    budget=120.0,
)


def synthetic(n: int, seed: int = 0) -> Dataset:
    """y = sin(x0) + x1·x2 + 0.5·x3² + 0.1·noise, five standard-normal features (x4 unused)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + 0.1 * rng.normal(size=n)
    return Dataset(f"synthetic{n}", X, y, [f"x{i}" for i in range(5)], "y")


def defaults() -> dict:
    """The Distiller's default parameters (those of ``jacdistill run`` without options)."""
    from jacdistill.estimator import Distiller

    return Distiller().get_params()


def row(section: str, case: str, mode: str, data_rows: int, seconds: float | None, **extra) -> dict:
    """One measurement; every row has the table's keys (None: not measured)."""
    keys = ("cpu_s", "teacher_s", "student_s", "lam", "student_r2_test", "note")
    return {
        "section": section,
        "case": case,
        "mode": mode,
        "data_rows": data_rows,
        "seconds": seconds,
        **{key: extra.pop(key, None) for key in keys},
        **extra,
    }


def teachers(n: int) -> str:
    return f"{n} teacher" + ("" if n == 1 else "s")


def clocked(call: Callable[[], T]) -> tuple[float, float, T]:
    """(wall seconds, CPU seconds of this process in all its threads, result) of ``call()``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - started, time.process_time() - cpu_started, result


def grid_section(plan: Plan, log, teacher: dict = TEACHER) -> list[dict]:
    """8 candidates batched and sequential against one teacher, interleaved rounds, medians."""
    data = load_bundled(plan.dataset)
    common = {**teacher, "student": "tree", "epochs": plan.grid_epochs, "patience": plan.grid_epochs}
    cases = {
        ("1 teacher", "one"): {**common, "lam": ONE_LAM},
        **{
            (f"{len(GRID)} candidates", mode): {
                **common,
                "lam": "auto",
                "tuner": "grid",
                "tuner_options": {"grid": list(GRID)},
                "batch_teachers": batched,
            }
            for mode, batched in MODES.items()
        },
    }
    for params in cases.values():  # warm-up: first calls into torch and the backends are slow
        evaluation.fit_and_score(data, {**params, "epochs": 2, "patience": 2})
    samples: dict = {key: [] for key in cases}
    cpu: dict = {key: [] for key in cases}
    trainings: dict = {}
    for _ in range(plan.grid_rounds):
        for key, params in cases.items():
            _, cpu_s, fitted = clocked(lambda params=params: evaluation.fit_and_score(data, params))
            metrics = fitted.metrics
            samples[key].append(metrics["timings"]["teacher"])
            cpu[key].append(cpu_s)
            trainings[key] = metrics.get("tuning", {}).get("compute", {}).get("teacher_trainings", 1)
            log(f"grid {key[0]} {key[1]}: {samples[key][-1]:.2f} s")
    return [
        row(
            "grid",
            case,
            mode,
            len(data.y),
            statistics.median(samples[case, mode]),
            cpu_s=statistics.median(cpu[case, mode]),
            teacher_s=statistics.median(samples[case, mode]),
            note=f"{teachers(trainings[case, mode])}, {plan.grid_epochs} epochs, "
            f"median of {plan.grid_rounds}",
            samples=samples[case, mode],
            cpu_samples=cpu[case, mode],
        )
        for case, mode in cases
    ]


def run_section(plan: Plan, log) -> list[dict]:
    """``evaluation.run`` (tuned fit + λ = 0 baseline) with the default settings, both orders."""
    data = load_bundled(plan.dataset)
    rows = []
    for mode, batched in MODES.items():
        params = {**defaults(), **plan.run_params, "batch_teachers": batched}
        seconds, cpu_s, (main, base) = clocked(lambda params=params: evaluation.run(data, params))
        fits = [main.metrics] + ([base.metrics] if base is not None and base is not main else [])
        teacher_s = sum(m["timings"]["teacher"] for m in fits)
        student_s = sum(m["timings"]["student"] for m in fits)
        selection_s = sum(m["timings"]["selection"] for m in fits)  # fronts, rule, readable formula
        compute = main.metrics.get("tuning", {}).get("compute", {})
        rows.append(
            row(
                "run",
                f"{plan.dataset} defaults",
                mode,
                len(data.y),
                seconds,
                cpu_s=cpu_s,
                teacher_s=teacher_s,
                student_s=student_s,
                lam=main.metrics["lam"],
                student_r2_test=main.metrics["student_r2_test"],
                note=f"{teachers(compute.get('teacher_trainings', 1))}, {len(fits)} student fits; "
                f"selection {selection_s:.2f} s ({selection_s / seconds:.1%} of the wall time)",
                selection_s=selection_s,
            )
        )
        log(
            f"run {mode}: {seconds:.1f} s (teacher {teacher_s:.1f} s, student {student_s:.1f} s, "
            f"selection {selection_s:.2f} s)"
        )
    return rows


def tuner_section(plan: Plan, log) -> list[dict]:
    """Each tuner's teacher-training seconds, batched and sequential; the chosen λ must agree."""
    data = load_bundled(plan.dataset)
    rows = []
    for name, options in plan.tuners.items():
        chosen = {}
        for mode, batched in MODES.items():
            params = {
                **defaults(),
                **TEACHER,
                **plan.tuner_params,
                "lam": "auto",
                "tuner": name,
                "tuner_options": options,
                "batch_teachers": batched,
            }
            seconds, cpu_s, fitted = clocked(lambda params=params: evaluation.fit_and_score(data, params))
            metrics = fitted.metrics
            chosen[mode] = metrics["lam"]
            compute = metrics["tuning"]["compute"]
            rows.append(
                row(
                    "tuners",
                    name,
                    mode,
                    len(data.y),
                    metrics["timings"]["teacher"],
                    cpu_s=cpu_s,
                    teacher_s=metrics["timings"]["teacher"],
                    student_s=metrics["timings"]["student"],
                    lam=metrics["lam"],
                    student_r2_test=metrics["student_r2_test"],
                    note=teachers(compute["teacher_trainings"]),
                    wall_seconds=seconds,
                )
            )
            log(
                f"tuner {name} {mode}: teachers {metrics['timings']['teacher']:.2f} s, λ={metrics['lam']:.3g}"
            )
        same = math.isclose(chosen["batched"], chosen["sequential"], rel_tol=1e-9, abs_tol=0.0)
        for r in rows[-2:]:
            r["same_lam"] = same
            if not same:
                r["note"] += "; CHOSEN λ DIFFERS"
        if not same:
            log(
                f"WARNING: tuner {name} chose λ {chosen['batched']} batched "
                f"but {chosen['sequential']} sequential"
            )
    return rows


def sweep_section(plan: Plan, log) -> list[dict]:
    """One sweep unit with all five arms, into a temporary folder, both orders."""
    from jacdistill import storage, sweep
    from jacdistill.trials import ARMS, trial_path

    unit = dataset, student, seed = plan.sweep_unit
    rows = []
    for mode, batched in MODES.items():
        spec = sweep.SweepSpec(
            datasets=(dataset,),
            students=(student,),
            seeds=(seed,),
            teacher={**plan.sweep_teacher, "batch_teachers": batched},
            student_options={student: plan.sweep_student_options} if plan.sweep_student_options else {},
        )
        with tempfile.TemporaryDirectory(prefix="jacdistill-e2e-") as folder:
            sweep.prepare(Path(folder), spec)
            seconds, cpu_s, ran = clocked(lambda spec=spec, folder=folder: sweep.run_unit(spec, folder, unit))
            trials = {
                arm: storage.read_json(trial_path(Path(folder), dataset, student, arm, seed)) for arm in ARMS
            }
        torch.set_num_threads(1)  # run_unit sets it too; kept so for the sections after
        arm_seconds = {arm: trial["seconds"] for arm, trial in trials.items()}
        rows.append(
            row(
                "sweep",
                f"{dataset}/{student}/seed {seed}",
                mode,
                len(load_bundled(dataset).y),
                seconds,
                cpu_s=cpu_s,
                lam=trials["regularized"]["lam"],
                student_r2_test=trials["regularized"]["student_r2_test"],
                note=f"{ran} arms; " + ", ".join(f"{arm} {s:.1f}" for arm, s in arm_seconds.items()),
                arm_seconds=arm_seconds,
            )
        )
        log(f"sweep unit {mode}: {seconds:.1f} s")
    return rows


def rows_section(plan: Plan, deadline: float, log) -> list[dict]:
    """The tuned fit on growing synthetic data (smallest first); a size whose projection from the
    sizes measured so far would pass ``deadline`` (a perf_counter time) is recorded as skipped,
    once ``MIN_SIZES`` sizes (enough for a slope) are measured."""
    rows: list[dict] = []
    for n in plan.sizes:
        measured = [r for r in rows if r["seconds"] is not None]
        left = deadline - time.perf_counter()
        projected = 0.0
        if measured:
            last = measured[-1]
            slope = max(1.0, growth(measured, "seconds") or 1.0)
            projected = last["seconds"] * (n / last["data_rows"]) ** slope
        if len(measured) >= MIN_SIZES and (projected > left or left <= 0):
            note = f"skipped: projected {projected:.0f} s, {max(left, 0):.0f} s left of the budget"
            rows.append(row("rows", "synthetic", "batched", n, None, note=note))
            log(f"rows {n}: {note}")
            continue
        params = {**defaults(), **plan.rows_params}
        seconds, cpu_s, fitted = clocked(
            lambda params=params, n=n: evaluation.fit_and_score(synthetic(n), params)
        )
        metrics = fitted.metrics
        compute = metrics["tuning"]["compute"]
        rows.append(
            row(
                "rows",
                "synthetic",
                "batched",
                n,
                seconds,
                cpu_s=cpu_s,
                teacher_s=metrics["timings"]["teacher"],
                student_s=metrics["timings"]["student"],
                lam=metrics["lam"],
                student_r2_test=metrics["student_r2_test"],
                note=f"{teachers(compute['teacher_trainings'])}, student on {metrics['student_rows']} rows",
                student_rows=metrics["student_rows"],
            )
        )
        log(
            f"rows {n}: {seconds:.1f} s (teacher {metrics['timings']['teacher']:.1f} s, "
            f"student {metrics['timings']['student']:.1f} s), student R²={metrics['student_r2_test']:.4f}"
        )
    return rows


def growth(rows: list[dict], key: str) -> float | None:
    """Slope of log(``key``) against log(rows) over the measured sizes (1: linear)."""
    points = [(r["data_rows"], r[key]) for r in rows if r.get(key) is not None and r[key] > 0]
    if len({n for n, _ in points}) < 2:
        return None
    x, y = np.log([n for n, _ in points]), np.log([t for _, t in points])
    return float(np.polyfit(x, y, 1)[0])


def backends() -> dict:
    """The jacobian backend the default option resolves to for one MLP and for a stack."""
    from jacdistill.registry import registry
    from jacdistill.teacher import MLP, MLPStack

    penalty = registry().regularizer("jacobian")()
    one = MLP(5, TEACHER["widths"], 1, TEACHER["activation"])
    try:
        return {"one": penalty.backend_for(one), "stack": penalty.backend_for(MLPStack([one, one]))}
    except Exception as exc:  # noqa: BLE001 - only a note in the settings
        return {"error": f"{type(exc).__name__}: {exc}"}


def measure(plan: Plan = FULL, log=lambda line: None) -> tuple[list[dict], dict]:
    """Every section's rows, and the ratios that summarize them."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = grid_section(plan, log)
    rows += run_section(plan, log)
    rows += tuner_section(plan, log)
    rows += sweep_section(plan, log)
    rows += rows_section(plan, started + plan.budget, log)
    summary = summarize(rows)
    summary["seconds"] = time.perf_counter() - started
    return rows, summary


def summarize(rows: list[dict]) -> dict:
    """Ratios: the grid's 8 candidates against one teacher, sequential against batched per
    section, whether the tuners chose the same λ both ways, and the growth with rows."""

    def seconds(section, case=None, mode=None, key="seconds"):
        (hit,) = [
            r[key]
            for r in rows
            if r["section"] == section
            and (case is None or r["case"] == case)
            and (mode is None or r["mode"] == mode)
        ]
        return hit

    eight = f"{len(GRID)} candidates"
    one = seconds("grid", "1 teacher")
    summary: dict = {
        "grid": {
            "one_teacher_s": one,
            "batched_vs_one": seconds("grid", eight, "batched") / one,
            "sequential_vs_one": seconds("grid", eight, "sequential") / one,
            "sequential_vs_batched": seconds("grid", eight, "sequential") / seconds("grid", eight, "batched"),
            # the same in CPU seconds of the whole fit, which other work on the machine moves less
            "batched_vs_one_cpu": seconds("grid", eight, "batched", "cpu_s")
            / seconds("grid", key="cpu_s", case="1 teacher"),
            "sequential_vs_one_cpu": seconds("grid", eight, "sequential", "cpu_s")
            / seconds("grid", key="cpu_s", case="1 teacher"),
        },
        "run": {
            key: seconds("run", mode="sequential", key=key) / seconds("run", mode="batched", key=key)
            for key in ("seconds", "teacher_s", "student_s")
        },
        "tuners": {},
        "sweep": {
            "sequential_vs_batched": seconds("sweep", mode="sequential") / seconds("sweep", mode="batched")
        },
    }
    for name in dict.fromkeys(r["case"] for r in rows if r["section"] == "tuners"):
        batched, sequential = (seconds("tuners", name, mode) for mode in MODES)
        same = all(r["same_lam"] for r in rows if r["section"] == "tuners" and r["case"] == name)
        summary["tuners"][name] = {"sequential_vs_batched": sequential / batched, "same_lam": same}
    grown = [r for r in rows if r["section"] == "rows" and r["seconds"] is not None]
    summary["rows"] = {
        "slopes": {key: growth(grown, key) for key in ("teacher_s", "student_s", "seconds")},
        "measured": [r["data_rows"] for r in grown],
        "skipped": [r["data_rows"] for r in rows if r["section"] == "rows" and r["seconds"] is None],
    }
    summary["flags"] = [
        f"tuner {name}: chosen λ differs" for name, t in summary["tuners"].items() if not t["same_lam"]
    ]
    return summary


def ratio_rows(summary: dict) -> list[dict]:
    """The summary as (ratio, value) rows for a table."""
    grid, slopes = summary["grid"], summary["rows"]["slopes"]
    table = [
        {"ratio": "grid: batched 8 / one teacher (target ≤ 2)", "value": grid["batched_vs_one"]},
        {"ratio": "grid: sequential 8 / one teacher", "value": grid["sequential_vs_one"]},
        {"ratio": "grid: sequential 8 / batched 8", "value": grid["sequential_vs_batched"]},
        {"ratio": "grid, CPU s: batched 8 / one teacher", "value": grid["batched_vs_one_cpu"]},
        {"ratio": "grid, CPU s: sequential 8 / one teacher", "value": grid["sequential_vs_one_cpu"]},
        {"ratio": "run: sequential / batched, wall", "value": summary["run"]["seconds"]},
        {"ratio": "run: sequential / batched, teachers", "value": summary["run"]["teacher_s"]},
    ]
    table += [
        {
            "ratio": f"tuner {name}: sequential / batched, teachers"
            + ("" if t["same_lam"] else " (λ DIFFERS)"),
            "value": t["sequential_vs_batched"],
        }
        for name, t in summary["tuners"].items()
    ]
    table.append(
        {"ratio": "sweep unit: sequential / batched", "value": summary["sweep"]["sequential_vs_batched"]}
    )
    table += [
        {"ratio": f"rows: slope of log {label} against log rows", "value": slopes[key]}
        for key, label in (("teacher_s", "teacher s"), ("student_s", "student s"), ("seconds", "total s"))
    ]
    return table


def settings(plan: Plan) -> dict:
    return {
        "plan": {**asdict(plan), "sweep_unit": list(plan.sweep_unit), "sizes": list(plan.sizes)},
        "grid": list(GRID),
        "one_lam": ONE_LAM,
        "teacher": {**TEACHER, "widths": list(TEACHER["widths"])},
        "jacobian_backend": backends(),
        "defaults": {k: list(v) if isinstance(v, tuple) else v for k, v in defaults().items()},
        "student_rows_default": defaults().get("student_rows", "absent"),
        "jobs_default": defaults().get("jobs", "absent"),
        "torch_threads": torch.get_num_threads(),
    }


def plot(rows: list[dict], path: str | Path) -> None:
    """Seconds against rows, log-log: teacher, student and total, with their slopes."""
    from jacdistill.storage import pyplot, write_figure

    grown = [r for r in rows if r["section"] == "rows" and r["seconds"] is not None]
    figure, axes = pyplot().subplots(figsize=(6, 4))
    for key, label in (("teacher_s", "teacher"), ("student_s", "student"), ("seconds", "total")):
        slope = growth(grown, key)
        shown = label if slope is None else f"{label} (slope {slope:.2f})"
        axes.plot([r["data_rows"] for r in grown], [r[key] for r in grown], marker="o", label=shown)
    if grown:  # log axes need a positive point
        axes.set_xscale("log")
        axes.set_yscale("log")
    axes.set_xlabel("rows")
    axes.set_ylabel("seconds")
    axes.set_title("jacdistill fit time against rows (synthetic, 5 features)")
    axes.legend()
    axes.grid(True, which="both", alpha=0.3)
    write_figure(path, figure)


COLUMNS = [
    ("section", ""),
    ("case", ""),
    ("mode", ""),
    ("data_rows", "d"),
    ("seconds", ".2f"),
    ("cpu_s", ".2f"),
    ("teacher_s", ".2f"),
    ("student_s", ".2f"),
    ("lam", ".3g"),
    ("student_r2_test", ".4f"),
    ("note", ""),
]
RATIO_COLUMNS = [("ratio", ""), ("value", ".2f")]


if __name__ == "__main__":
    from jacdistill.benchmarks.commands import run_standalone

    run_standalone("e2e", sys.argv[1:])
