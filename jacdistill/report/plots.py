"""The report's plots: student R² against λ, fidelity against accuracy, the paired ΔR² per dataset as
a forest plot, and (for sweeps that recorded fronts) student R² under complexity caps. Dataset and
student names are drawn as written, and a plot that fails is a warning
(:func:`jacdistill.storage.figure`)."""

from __future__ import annotations

import statistics
from pathlib import Path

from jacdistill import storage
from jacdistill.report.loading import CAPS, arms_in, capped_r2, finite, has_front
from jacdistill.trials import REFERENCES, TREATMENTS

PLOTS = ("student_r2_vs_lambda.png", "fidelity_vs_accuracy.png", "delta_r2_forest.png")
FRONTS_PLOT = "capped_r2.png"  # drawn only for sweeps whose trials recorded fronts
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


MAX_INCHES = 16.0  # neither side of a figure grows past this, however many datasets or students
REFERENCE_COLORS = {"baseline": "C0", "direct": "C7", "control": "C3"}
LINTHRESH = 0.1  # ΔR² within ±0.1 (most effects) is drawn linearly, the rare ones up to ±2 on a log scale


def _grid(plt, rows: int, columns: int, width: float, height: float, **kwargs):
    """Subplots of about ``width`` × ``height`` inches each, shrunk to keep within ``MAX_INCHES``."""
    size = (min(columns * width, MAX_INCHES), min(rows * height, MAX_INCHES))
    return plt.subplots(rows, columns, figsize=size, squeeze=False, **kwargs)


def _forest_panel(axes, block: dict, datasets: list[str]) -> None:
    """One treatment's comparisons for one student: a row per dataset, the pooled one last; one
    interval per reference, offset within the row; filled where the outcome is significant."""
    y_of = {d: len(datasets) - i for i, d in enumerate(datasets)}
    for k, ref in enumerate(REFERENCES):
        comparison = block[f"vs_{ref}"]
        if comparison is None:
            continue
        shift = 0.25 * (1 - k)
        rows = [(y_of[r["dataset"]] + shift, r, "o") for r in comparison["per_dataset"]]
        if comparison["mean_delta_r2"] is not None:
            rows.append((-0.5 + shift, comparison, "D"))
        for y, row, marker in rows:
            color = REFERENCE_COLORS.get(ref, "k")
            if row["ci"] is not None:
                axes.plot(row["ci"], [y, y], color=color, linewidth=1.2)
            axes.plot(
                row["mean_delta_r2"],
                y,
                marker=marker,
                color=color,
                markerfacecolor=color if row["outcome"] != "tie" else "white",
                markersize=5 if marker == "o" else 7,
            )
    axes.axvline(0, color="black", linewidth=0.8)
    axes.axhline(0.25, color="grey", linewidth=0.5, linestyle=":")
    axes.set_xscale("symlog", linthresh=LINTHRESH)
    axes.xaxis.set_major_formatter(lambda x, _: f"{x:g}")  # the default writes mathtext, drawn as text here
    axes.set_yticks([*y_of.values(), -0.5], [*y_of, "all datasets"])
    axes.set_ylim(-1.1, len(datasets) + 0.6)
    axes.grid(axis="x", color="0.9")


@storage.figure
def plot_forest(agg: dict, path: Path) -> None:
    """Mean student test ΔR² (treatment − each reference) per dataset with its bootstrap interval,
    and the mean over datasets (diamond) with its interval: one panel per treatment (rows) and
    student (columns), the references in colour, shared axes, a vertical line at 0."""
    plt = storage.pyplot()
    students = agg["students"]
    treatments = [
        arm
        for arm in TREATMENTS
        if any((block if arm == "regularized" else block["augmented"]) for block in students.values())
    ]
    datasets = agg["datasets"]
    height = 0.9 + 0.26 * (len(datasets) + 1.5)
    figure, panels = _grid(
        plt, max(len(treatments), 1), max(len(students), 1), 3.6, height, sharex=True, sharey=True
    )
    drawn = False
    for row, treatment in enumerate(treatments):
        for column, (student, student_agg) in enumerate(students.items()):
            axes = panels[row][column]
            block = student_agg if treatment == "regularized" else student_agg["augmented"]
            if block is None or all(block[f"vs_{ref}"] is None for ref in REFERENCES):
                axes.set_title(f"{student}: no {treatment} comparisons", fontsize="small")
                continue
            _forest_panel(axes, block, datasets)
            axes.set_title(f"{student}: {treatment} − reference", fontsize="medium")
            drawn = True
        panels[row][0].tick_params(axis="y", labelsize="small")
    if not drawn:
        _empty(panels[0][0], "no treatment arm paired with a reference")
    else:
        for axes in panels[-1]:
            axes.set_xlabel(f"ΔR², test (symlog, linear within ±{LINTHRESH:g})")
        handles = [
            plt.Line2D([], [], color=REFERENCE_COLORS[ref], marker="o", label=f"vs {ref}")
            for ref in REFERENCES
        ]
        handles.append(
            plt.Line2D([], [], color="k", marker="o", markerfacecolor="white", linestyle="", label="tie")
        )
        figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small", frameon=False)
        figure.tight_layout(rect=(0, 0.04, 1, 1))
    storage.write_figure(path, figure)


FRONT_POINTS = (*(f"≤ {cap}" for cap in CAPS), "selected")


def _median(values) -> float | None:
    numbers = [v for v in values if v is not None]
    return statistics.median(numbers) if numbers else None


@storage.figure
def plot_fronts(trials: list[dict], path: Path) -> None:
    """Per dataset and student, over the trials that recorded a front: the median over seeds of the
    capped student test R² at each cap and of the selected formula's, one line per arm."""
    plt = storage.pyplot()
    fronted = [t for t in trials if has_front(t)]
    keys = sorted({(t["dataset"], t["student"]) for t in fronted})
    several = len({student for _, student in keys}) > 1
    columns = min(6, max(len(keys), 1))
    figure, panels = _grid(plt, -(-max(len(keys), 1) // columns), columns, 2.5, 2.1, sharex=True)
    for axes in panels.flat[len(keys) :]:
        axes.set_axis_off()
    if not keys:
        _empty(panels[0][0], "no trial recorded a front")
    for axes, (dataset, student) in zip(panels.flat, keys):
        ys = []
        for arm in arms_in(fronted):
            ts = [
                t for t in fronted if t["dataset"] == dataset and t["student"] == student and t["arm"] == arm
            ]
            medians = [_median(capped_r2(t, cap) for t in ts) for cap in CAPS]
            medians.append(_median(finite(t.get("student_r2_test")) for t in ts))
            points = [(i, m) for i, m in enumerate(medians) if m is not None]
            if points:
                axes.plot(*zip(*points), marker="o", markersize=3, color=ARM_COLORS.get(arm, "k"), label=arm)
                ys += [m for _, m in points]
        _clip(axes, ys)
        axes.set_xticks(range(len(FRONT_POINTS)), FRONT_POINTS, fontsize="x-small")
        axes.tick_params(axis="y", labelsize="x-small")
        axes.set_title(f"{dataset}, {student}" if several else dataset, fontsize="small")
    if keys:
        handles, labels = [], []
        for axes in panels.flat:
            for handle, label in zip(*axes.get_legend_handles_labels()):
                if label not in labels:
                    handles.append(handle)
                    labels.append(label)
        figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small", frameon=False)
        figure.supylabel("median student test R²", fontsize="small")
        figure.tight_layout(rect=(0, 0.05, 1, 1))
    storage.write_figure(path, figure)
