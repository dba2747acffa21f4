"""The report's plots: student R² against λ, fidelity against accuracy, and R² per dataset and arm.
Dataset and student names are drawn as written, and a plot that fails is a warning
(:func:`jacdistill.storage.figure`)."""

from __future__ import annotations

import statistics
from pathlib import Path

from jacdistill import storage
from jacdistill.report.loading import arms_in, finite, ordered_arms

PLOTS = ("student_r2_vs_lambda.png", "fidelity_vs_accuracy.png", "per_dataset.png")
ARM_COLORS = {"direct": "C7", "baseline": "C0", "regularized": "C1", "augmented": "C2", "control": "C3"}
R2_FLOOR = -1.0  # plots clip R² below this, so one blown-up formula does not flatten the rest


def _empty(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _clip(axes, values: list[float], axis: str = "y") -> None:
    if values and min(values) < R2_FLOOR:
        setter = axes.set_ylim if axis == "y" else axes.set_xlim
        setter(R2_FLOOR - 0.05, max(max(values), 0) + 0.05)


@storage.figure
def plot_lambda(trials: list[dict], path: Path) -> None:
    """Student validation R² against λ from the regularized arm's tuning trials: the trials as dots,
    their mean per λ as a line, one colour per dataset, one panel per student."""
    plt = storage.pyplot()
    points: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for t in trials:
        if t["arm"] != "regularized" or not isinstance(t.get("tuning"), dict):
            continue
        for record in t["tuning"].get("trials") or ():
            if not isinstance(record, dict) or "schedule" in record:
                continue
            lam, r2 = finite(record.get("lam")), finite(record.get("student_r2_val"))
            if lam is not None and r2 is not None:
                points.setdefault(t["student"], {}).setdefault(t["dataset"], []).append((lam, r2))
    students = sorted(points) or [None]
    figure, panels = plt.subplots(1, len(students), figsize=(6 * len(students), 4), squeeze=False)
    for axes, student in zip(panels[0], students):
        if student is None:
            _empty(axes, "no tuning trials with a student validation R² in the regularized arm")
            continue
        lams, ys = [], []
        for i, (dataset, pts) in enumerate(sorted(points[student].items())):
            color = f"C{i % 10}"
            axes.scatter(*zip(*pts), color=color, alpha=0.35, s=14)
            by_lam: dict[float, list[float]] = {}
            for lam, r2 in pts:
                by_lam.setdefault(lam, []).append(r2)
            line = sorted((lam, statistics.fmean(v)) for lam, v in by_lam.items())
            axes.plot(*zip(*line), color=color, marker="o", label=dataset)
            lams += [lam for lam, _ in pts]
            ys += [r2 for _, r2 in pts]
        smallest = min([lam for lam in lams if lam > 0] or [1e-4])
        axes.set_xscale("symlog", linthresh=smallest)
        axes.set_xlim(left=-smallest / 2)
        _clip(axes, ys)
        axes.set_xlabel("λ")
        axes.set_ylabel("student R², validation")
        axes.set_title(f"{student}: regularized arm, tuning trials")
        axes.legend(fontsize="small")
    storage.write_figure(path, figure)


@storage.figure
def plot_fidelity(trials: list[dict], path: Path) -> None:
    """Fidelity R² (student vs teacher) against student R² (vs the truth) on the test rows, per trial,
    coloured by arm (marker by student when there are several)."""
    plt = storage.pyplot()
    figure, axes = plt.subplots(figsize=(6, 5))
    markers = "osD^v<>pPX*h"
    students = sorted({t["student"] for t in trials})
    xs, ys = [], []
    for arm in arms_in(trials):
        for k, student in enumerate(students):
            pts = [
                (finite(t.get("fidelity_r2_test")), finite(t.get("student_r2_test")))
                for t in trials
                if t["arm"] == arm and t["student"] == student
            ]
            pts = [(x, y) for x, y in pts if x is not None and y is not None]
            if not pts:
                continue
            label = arm if len(students) == 1 else f"{arm}, {student}"
            axes.scatter(
                *zip(*pts),
                color=ARM_COLORS.get(arm, "k"),
                marker=markers[k % len(markers)],
                alpha=0.7,
                s=22,
                label=label,
            )
            xs += [x for x, _ in pts]
            ys += [y for _, y in pts]
    if not xs:
        _empty(axes, "no trial with both a fidelity and a student test R²")
    else:
        _clip(axes, xs, "x")
        _clip(axes, ys, "y")
        axes.set_xlabel("fidelity R² (student vs teacher), test")
        axes.set_ylabel("student R² (vs truth), test")
        axes.set_title("fidelity against accuracy")
        axes.legend(fontsize="small")
    storage.write_figure(path, figure)


@storage.figure
def plot_per_dataset(table_rows: list[dict], path: Path) -> None:
    """Mean student test R² per dataset (and student) for each arm present, ± std over seeds."""
    plt = storage.pyplot()
    arms = ordered_arms(arm for row in table_rows for arm in row["arms"])
    several = len({row["student"] for row in table_rows}) > 1
    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(table_rows) + 2), 4))
    width = 0.8 / max(len(arms), 1)
    heights = []
    for j, arm in enumerate(arms):
        xs, means, errs = [], [], []
        for i, row in enumerate(table_rows):
            stats = row["arms"].get(arm, {}).get("student_r2_test")
            if stats and stats["mean"] is not None:
                xs.append(i - 0.4 + width * (j + 0.5))
                means.append(stats["mean"])
                errs.append(stats["std"] or 0.0)
        if xs:
            axes.bar(xs, means, width, yerr=errs, capsize=2, color=ARM_COLORS.get(arm, f"C{j}"), label=arm)
            heights += means
    if not heights:
        _empty(axes, "no trial with a student test R²")
    else:
        axes.set_xticks(range(len(table_rows)))
        axes.set_xticklabels(
            [f"{r['dataset']}\n{r['student']}" if several else r["dataset"] for r in table_rows],
            rotation=30 if len(table_rows) > 6 else 0,
        )
        axes.axhline(0, color="black", linewidth=0.6)
        _clip(axes, heights)
        axes.set_ylabel("mean student R², test")
        axes.set_title("student test R² per dataset and arm")
        axes.legend(fontsize="small")
    storage.write_figure(path, figure)
