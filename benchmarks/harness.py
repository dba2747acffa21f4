"""Shared benchmark plumbing: interleaved timing, result files with provenance, plain tables."""
from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Callable

from jacdistill import provenance, storage

RESULTS_DIR = Path("benchmarks") / "results"


def interleaved_medians(cells: dict[str, Callable[[], None]], rounds: int, repeats: int,
                        warmup: int, sync: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median seconds per call of each cell; cells take turns every round so that drift in the
    machine's speed (other load, clocks) hits all of them alike."""
    for fn in cells.values():
        for _ in range(warmup):
            fn()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in cells}
    for _ in range(rounds):
        for name, fn in cells.items():
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            sync()
            samples[name].append((time.perf_counter() - start) / repeats)
    return {name: statistics.median(values) for name, values in samples.items()}


def save(name: str, rows: list[dict], settings: dict, device: str = "cpu",
         out_dir: str | Path = RESULTS_DIR, **extra) -> Path:
    """Write ``<out_dir>/<name>-<device>.json`` atomically with machine, versions and ``extra``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{device.split(':')[0]}.json"
    storage.write_json(path, {"benchmark": name, "date": dt.datetime.now().isoformat(timespec="seconds"),
                              "machine": provenance.machine(device),
                              "versions": provenance.package_versions(), "settings": settings,
                              "rows": rows, **extra})
    return path


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with (key, format) ``columns``."""
    cells = [[format(row[key], fmt) if row[key] is not None else "" for key, fmt in columns] for row in rows]
    header = [key for key, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = lambda values: "| " + " | ".join(v.rjust(w) for v, w in zip(values, widths)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(c) for c in cells)])
