"""Figures of one run: the accuracy–complexity fronts with the chosen formulas, and the fitted curves
along each feature over the data. Names are drawn as written, and a figure that fails to draw is a
warning (:func:`jacdistill.storage.figure`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jacdistill import storage
from jacdistill.report.plots import ARM_COLORS, R2_FLOOR

SPARE_COLORS = ("C4", "C5", "C6", "C8", "C9")  # for labels that name no arm: colours no arm uses
GRID_POINTS = 200  # points along each feature's 1st–99th percentile
MAX_SCATTER = 2000  # data points drawn per panel, at most
Curve = Callable[[np.ndarray], np.ndarray]


def _color(label: str, i: int) -> str:
    """The colour of the first arm named in ``label`` (ARM_COLORS), else a spare one."""
    arm = next((arm for arm in ARM_COLORS if arm in label), None)
    return ARM_COLORS[arm] if arm else SPARE_COLORS[i % len(SPARE_COLORS)]


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@storage.figure
def plot_front(fronts: dict[str, list[dict]], path: Path, title: str = "") -> None:
    """Validation R² against complexity for each front's members (rows with ``complexity``,
    ``student_r2_val`` and ``chosen``), one line per label, the chosen member enlarged and annotated;
    members whose R² is missing or NaN are left out, and R² below ``R2_FLOOR`` is clipped."""
    plt = storage.pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    ys: list[float] = []
    for i, (label, rows) in enumerate(fronts.items()):
        points = sorted(
            (row["complexity"], r2, bool(row.get("chosen")))
            for row in rows
            if (r2 := _finite(row.get("student_r2_val"))) is not None
        )
        if not points:
            continue
        color = _color(label, i)
        xs, r2s, _ = zip(*points)
        axes.plot(xs, r2s, marker="o", markersize=4, color=color, label=label)
        for x, r2, _ in (p for p in points if p[2]):
            axes.plot(x, r2, marker="*", markersize=15, color=color, markeredgecolor="k", zorder=3)
            axes.annotate(
                f"chosen: {x} nodes, R² = {r2:.3f}",
                (x, r2),
                xytext=(6, -14 if i % 2 else 8),
                textcoords="offset points",
                color=color,
                fontsize="small",
            )
        ys += r2s
    if not ys:
        axes.text(0.5, 0.5, "no member with a validation R²", ha="center", va="center")
        axes.set_axis_off()
    else:
        if min(ys) < R2_FLOOR:
            axes.set_ylim(R2_FLOOR - 0.05, max(max(ys), 0) + 0.05)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_xlabel("complexity (nodes)")
        axes.set_ylabel("validation R²")
        axes.legend(fontsize="small")
    if title:
        axes.set_title(title)
    storage.write_figure(path, figure)


def _sweep(X: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
    """A grid over feature ``j``'s 1st–99th percentile, and the inputs that vary feature ``j``
    along it with every other feature at its median."""
    grid = np.linspace(*np.percentile(X[:, j], [1, 99]), GRID_POINTS)
    inputs = np.tile(np.median(X, axis=0), (GRID_POINTS, 1))
    inputs[:, j] = grid
    return grid, inputs


def _predict(curve: Curve, inputs: np.ndarray) -> np.ndarray:
    """The curve's predictions, NaN where not finite (a formula may overflow off the data)."""
    with np.errstate(all="ignore"):
        values = np.asarray(curve(inputs), dtype=float).reshape(-1)
    return np.where(np.isfinite(values), values, np.nan)


def important_features(curve: Curve, X: np.ndarray, count: int) -> list[int]:
    """The indices of the ``count`` features along which ``curve`` varies most, most first: the
    range (max − min, over finite values) of the curve along each feature's sweep (:func:`_sweep`),
    ties in column order. Like the panels, it varies one feature at a time from the median point, so
    it misses what a feature does only jointly with others."""
    spans = []
    for j in range(X.shape[1]):
        values = _predict(curve, _sweep(X, j)[1])
        spans.append(np.nanmax(values) - np.nanmin(values) if np.isfinite(values).any() else 0.0)
    return sorted(range(X.shape[1]), key=lambda j: -spans[j])[:count]


@storage.figure
def plot_fit(
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    target: str,
    curves: dict[str, Curve],
    path: Path,
    max_panels: int = 6,
) -> None:
    """One panel per feature: the data (``y`` against the feature, at most ``MAX_SCATTER`` rows
    drawn at random) and each curve along the feature with every other feature at its median.
    With more than ``max_panels`` features, the panels show those along which the first curve (the
    teacher) varies most (:func:`important_features`), most first. Curves take raw n×d inputs and
    return n predictions of ``target``; the first is drawn thick and black, the others in the colour
    of the arm their label names. Values that are not finite are left out, and the shared y
    range is the data's, widened to take in curves up to a quarter of its width beyond it."""
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    plt = storage.pyplot()
    features = important_features(next(iter(curves.values())), X, max_panels)
    columns = min(3, len(features))
    rows = -(-len(features) // columns)
    figure, panels = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.2 * rows), sharey=True, squeeze=False, layout="constrained"
    )
    for axes in panels.flat[len(features) :]:
        axes.set_axis_off()
    shown = np.random.default_rng(0).permutation(len(y))[:MAX_SCATTER]
    lo, hi = np.nanmin(y), np.nanmax(y)
    reach = 0.25 * ((hi - lo) or 1.0)
    bottom, top = lo, hi
    for axes, j in zip(panels.flat, features):
        axes.scatter(X[shown, j], y[shown], s=4, color="0.75", alpha=0.6, linewidths=0, label="data")
        grid, inputs = _sweep(X, j)
        for i, (label, curve) in enumerate(curves.items()):
            values = _predict(curve, inputs)
            style = (
                {"color": "k", "linewidth": 3} if i == 0 else {"color": _color(label, i), "linewidth": 1.5}
            )
            axes.plot(grid, values, label=label, **style)
            within = values[(values >= lo - reach) & (values <= hi + reach)]
            if within.size:
                bottom, top = min(bottom, within.min()), max(top, within.max())
        axes.set_title(feature_names[j], fontsize="medium")
    margin = 0.05 * ((top - bottom) or 1.0)
    panels[0][0].set_ylim(bottom - margin, top + margin)
    for axes in panels[:, 0]:
        axes.set_ylabel(target)
    handles, labels = panels[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize="small")
    storage.write_figure(path, figure)
