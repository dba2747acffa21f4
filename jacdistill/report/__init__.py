"""The report of a ``jacdistill sweep``: paired statistics over seeds, tables, plots.

A sweep directory holds one JSON file per finished trial under ``trials/`` (and, optionally, the
sweep's settings in ``sweep.json``). Reading them: :mod:`.loading`; the statistics and why they are
what they are: :mod:`.stats`; ``report.md``: :mod:`.markdown`; its PNGs: :mod:`.plots`.
"""

from __future__ import annotations

import json
from pathlib import Path

from jacdistill import storage
from jacdistill.report.loading import load_trials, read_settings
from jacdistill.report.markdown import render_markdown
from jacdistill.report.plots import FRONTS_PLOT, PLOTS, plot_fidelity, plot_forest, plot_fronts, plot_lambda
from jacdistill.report.stats import aggregate, per_dataset


def report_json(sweep_dir: str | Path) -> dict:
    """What ``jacdistill report SWEEP_DIR --json`` prints: the aggregates and ``sweep.json``
    (as ``settings``), strict-JSON ready (NaN and ±inf as None)."""
    trials = load_trials(sweep_dir)
    settings, _ = read_settings(sweep_dir)
    return json.loads(
        storage.to_json({"sweep_dir": str(sweep_dir), "settings": settings, **aggregate(trials)})
    )


def write_report(sweep_dir: str | Path) -> Path:
    """Write ``report.md`` and its three PNGs (``PLOTS``; a fourth, ``FRONTS_PLOT``, when trials
    recorded fronts) into the sweep directory, each atomically; the plots first, ``report.md`` last.
    Returns the path of ``report.md``."""
    sweep_dir = Path(sweep_dir)
    trials = load_trials(sweep_dir)
    settings, settings_error = read_settings(sweep_dir)
    agg, table_rows = aggregate(trials), per_dataset(trials)
    plot_lambda(trials, sweep_dir / PLOTS[0])
    plot_fidelity(trials, sweep_dir / PLOTS[1])
    plot_forest(agg, sweep_dir / PLOTS[2])
    if agg["n_fronts"]:
        plot_fronts(trials, sweep_dir / FRONTS_PLOT)
    path = sweep_dir / "report.md"
    storage.write_text(path, render_markdown(sweep_dir, trials, agg, table_rows, settings, settings_error))
    return path
