"""Shared benchmark plumbing: interleaved timing and result files with provenance."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from jacdistill import provenance, storage

# where the standalone scripts (python benchmarks/<name>.py) keep their results: this folder,
# whatever the working directory; ``jacdistill bench`` writes only where its --out says
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def interleaved_medians(
    cells: dict[str, Callable[[], None]],
    rounds: int,
    repeats: int,
    warmup: int,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, float]:
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


def save(name: str, rows: list[dict], settings: dict, device: str, out_dir: str | Path, **extra) -> Path:
    """Write ``<out_dir>/<name>-<device>.json`` atomically with machine, versions and ``extra``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{device.split(':')[0]}.json"
    storage.write_json(
        path,
        {
            "benchmark": name,
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": provenance.machine(device),
            "versions": provenance.package_versions(),
            "settings": settings,
            "rows": rows,
            **extra,
        },
    )
    return path
