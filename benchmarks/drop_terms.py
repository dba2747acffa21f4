"""Leaving small terms out of the formula shown (``readable(..., drop_terms=True)``): how much
shorter the formulas get, at what cost in test R², and what it does to symbolic solutions.

Each student is fitted once; its chosen front member, constants in full, is then made readable
both ways on the training and validation rows, as the estimators do, and both are scored:

- ``truth`` (default): the smoothness study's 60 Feynman problems (10 equations × noise 0, 0.01,
  0.1 × n 100, 1 000), Operon on scaled inputs, arms ``direct`` (``DirectRegressor``) and
  ``baseline`` (``Distiller``, λ = 0, early-stopped teacher): formula nodes, test R² against the
  noiseless target, symbolic solution;
- ``real``: the 12 bundled datasets, ``direct``, gplearn and Operon on standardized inputs:
  formula nodes, test R².

    python benchmarks/drop_terms.py [truth|real ...] [--seeds 0] [--out DIR]

Writes ``drop_terms-cpu.json`` (every fit, and a summary per part, arm and student).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import numpy as np

from jacdistill import groundtruth
from jacdistill.benchmarks import harness
from jacdistill.benchmarks.smoothness_study import REAL, TRUTH
from jacdistill.contracts import count_nodes
from jacdistill.data import load_spec, split_indices
from jacdistill.estimator import DirectRegressor, Distiller
from jacdistill.evaluation import frame
from jacdistill.formula import evaluate
from jacdistill.metrics import r2
from jacdistill.readable import readable
from jacdistill.tables import markdown_table

PARTS = {
    "truth": {"datasets": TRUTH, "students": ("operon",), "arms": ("direct", "baseline"), "inputs": "scaled"},
    "real": {
        "datasets": REAL,
        "students": ("gplearn", "operon"),
        "arms": ("direct",),
        "inputs": "standardized",
    },
}
WAYS = {"kept": False, "dropped": True}  # drop_terms


def fitted(arm: str, student: str, seed: int, inputs: str, data, split):
    rows = (frame(data, split.train), data.y[split.train], frame(data, split.val), data.y[split.val])
    if arm == "direct":
        return DirectRegressor(student, seed=seed, jobs=1, student_inputs=inputs).fit(*rows)
    teacher = {"regularizer": "none", "lam": 0.0, "epochs": 300, "jobs": 1}
    return Distiller(student=student, seed=seed, student_inputs=inputs, **teacher).fit(*rows)


def measure(part: str, seeds: list[int]) -> list[dict]:
    setting, out = PARTS[part], []
    for spec in setting["datasets"]:
        data = load_spec(spec)
        test_target = data.y if data.y_true is None else data.y_true  # noiseless where known
        columns = dict(zip(data.feature_names, data.X.T))
        for student, arm, seed in itertools.product(setting["students"], setting["arms"], seeds):
            split = split_indices(len(data.y), seed)
            est = fitted(arm, student, seed, setting["inputs"], data, split)
            full = est.member_formula(est.chosen_)
            row = {"part": part, "dataset": data.name, "student": student, "arm": arm, "seed": seed}
            seen = np.concatenate([split.train, split.val])
            for way, drop in WAYS.items():
                shown = readable(full, data.feature_names, data.X[seen], data.y[seen], drop_terms=drop)
                row[f"nodes_{way}"] = count_nodes(shown)
                row[f"r2_{way}"] = r2(
                    test_target[split.test], evaluate(shown, data.feature_names, data.X[split.test])
                )
                if data.formula is not None:
                    candidate = groundtruth.as_truth_symbols(shown, data.formula)
                    row[f"solution_{way}"] = groundtruth.symbolic_solution(
                        candidate, data.formula, rows=columns
                    )
            out.append(row)
            print(row, flush=True)
    return out


def summarize(rows: list[dict]) -> list[dict]:
    """Per part, arm and student: nodes kept → dropped (medians), how many formulas got shorter,
    the test R² change (median and worst), solutions both ways where the truth is known."""
    summary = []
    for key in dict.fromkeys((r["part"], r["arm"], r["student"]) for r in rows):
        mine = [r for r in rows if (r["part"], r["arm"], r["student"]) == key]
        change = [r["r2_dropped"] - r["r2_kept"] for r in mine]
        entry = {
            "part": key[0],
            "arm": key[1],
            "student": key[2],
            "fits": len(mine),
            "nodes_kept": statistics.median(r["nodes_kept"] for r in mine),
            "nodes_dropped": statistics.median(r["nodes_dropped"] for r in mine),
            "shorter": sum(r["nodes_dropped"] < r["nodes_kept"] for r in mine),
            "median_delta_r2": statistics.median(change),
            "worst_delta_r2": min(change),
        }
        if "solution_kept" in mine[0]:
            for way in WAYS:
                entry[f"solved_{way}"] = sum(r[f"solution_{way}"] is True for r in mine)
        summary.append(entry)
    return summary


COLUMNS = [
    ("part", "s"),
    ("arm", "s"),
    ("student", "s"),
    ("fits", "d"),
    ("nodes_kept", ".1f"),
    ("nodes_dropped", ".1f"),
    ("shorter", "d"),
    ("median_delta_r2", "+.4f"),
    ("worst_delta_r2", "+.4f"),
    ("solved_kept", "d"),
    ("solved_dropped", "d"),
]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", default=str(harness.RESULTS_DIR))
    args = parser.parse_args()
    parts = args.parts or list(PARTS)
    if set(parts) - set(PARTS):
        parser.error(f"parts are {', '.join(PARTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = [row for part in parts for row in measure(part, seeds)]
    summary = summarize(rows)
    settings = {
        "seeds": seeds,
        "parts": {p: {**PARTS[p], "datasets": list(PARTS[p]["datasets"])} for p in parts},
    }
    path = harness.save("drop_terms", rows, settings, "cpu", Path(args.out), summary=summary)
    print(markdown_table([{"solved_kept": None, "solved_dropped": None, **e} for e in summary], COLUMNS))
    print(f"written to {path}")
