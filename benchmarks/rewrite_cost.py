"""What the simplification step of ``readable`` costs as formulas grow: the size bounds it uses
instead of a time cap (``_EXPAND_MAX_NODES``, ``_FACTOR_MAX_NODES``) come from here.

Every distinct formula the smoothness study's students gave (``benchmarks/results/
smoothness_study``, gplearn and Operon, real data and Feynman problems) is read back and each
rewrite is timed on it: the best of three, sympy's cache cleared before each, so that one
formula's time does not lean on another's.

    python benchmarks/rewrite_cost.py [--out DIR]

Writes ``rewrite_cost-cpu.json``: every formula's nodes and times, and per size band the count,
the median and the largest time of each rewrite.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import sympy

from jacdistill import storage
from jacdistill.benchmarks import harness
from jacdistill.benchmarks.smoothness_study import OUT as STUDY
from jacdistill.contracts import count_nodes
from jacdistill.readable import _EXPAND_MAX_NODES
from jacdistill.tables import markdown_table

REPEATS = 3
BANDS = ((0, 50), (51, 100), (101, 250), (251, 500), (501, 1000), (1001, 10**9))


def formulas() -> list[tuple[str, sympy.Expr]]:
    """(student, expression) for every distinct formula of the study's trials."""
    seen: dict[str, tuple[str, sympy.Expr]] = {}
    for path in sorted(STUDY.glob("*/*/trials/*.json")):
        trial = storage.read_json(path)
        text = trial["formula"].split(" = ", 1)[1]
        if text not in seen:
            symbols = {name: sympy.Symbol(name) for name in trial["variables"]}
            seen[text] = (trial["student"], sympy.sympify(text, locals=symbols))
    return list(seen.values())


def seconds(rewrite, expr: sympy.Expr) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        sympy.core.cache.clear_cache()
        started = time.perf_counter()
        rewrite(expr)
        best = min(best, time.perf_counter() - started)
    return best


def measure() -> list[dict]:
    rows = []
    for student, expr in formulas():
        nodes = count_nodes(expr)
        rows.append(
            {
                "student": student,
                "nodes": nodes,
                "factor_terms_s": seconds(sympy.factor_terms, expr),
                "expand_s": seconds(sympy.expand, expr) if nodes <= _EXPAND_MAX_NODES else None,
            }
        )
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    summary = []
    for low, high in BANDS:
        band = [r for r in rows if low <= r["nodes"] <= high]
        if not band:
            continue
        entry = {"nodes": f"{low}-{high}" if high < 10**9 else f">{low - 1}", "formulas": len(band)}
        for rewrite in ("factor_terms_s", "expand_s"):
            times = [r[rewrite] for r in band if r[rewrite] is not None]
            entry[f"{rewrite[:-2]}_median_ms"] = 1e3 * statistics.median(times) if times else None
            entry[f"{rewrite[:-2]}_max_ms"] = 1e3 * max(times) if times else None
        summary.append(entry)
    return summary


COLUMNS = [
    ("nodes", "s"),
    ("formulas", "d"),
    ("factor_terms_median_ms", ".1f"),
    ("factor_terms_max_ms", ".1f"),
    ("expand_median_ms", ".1f"),
    ("expand_max_ms", ".1f"),
]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(harness.RESULTS_DIR))
    args = parser.parse_args()
    rows = measure()
    summary = summarize(rows)
    settings = {"repeats": REPEATS, "formulas_from": str(STUDY.relative_to(STUDY.parents[2]))}
    path = harness.save("rewrite_cost", rows, settings, "cpu", Path(args.out), summary=summary)
    print(markdown_table(summary, COLUMNS))
    print(f"largest formula: {max(r['nodes'] for r in rows)} nodes")
    print(f"written to {path}")
