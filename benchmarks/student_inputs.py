"""Standardized or scaled student inputs: what centring does to a Feynman formula, and what
scaling without centring costs or gains on real data.

Students are fitted on standardized inputs ((x − mean) / std) by default; a monomial such as k·x²/2
becomes a product of affine factors there: longer, so a length-penalized choice passes it over, and
even when found, its fitted constants do not round back to the truth's in the raw variables.

- ``formula`` (default): fits Operon (its defaults) to one generated problem's rows three ways,
  raw, scaled only (x / std) and standardized, and prints each expression and whether it is a
  symbolic solution of the truth in the raw variables. What it found is why
  ``student_inputs="scaled"`` exists.
- ``--real``: symbolic regression on the data itself (``DirectRegressor``, default budgets, the
  study's split and selection rule) on every bundled dataset, gplearn and Operon, with
  ``student_inputs`` standardized and scaled: test R², the student's complexity and the length
  of the formula in the data's units (expression nodes). Writes ``student_inputs-cpu.json``.

    python benchmarks/student_inputs.py [--spec feynman:I.14.4?n=1000&noise=0] [--seeds 0,1]
    python benchmarks/student_inputs.py --real [--seeds 0,1,2] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import sympy

from jacdistill import groundtruth
from jacdistill.benchmarks import harness
from jacdistill.contracts import count_nodes, variables
from jacdistill.data import bundled_datasets, load_bundled, load_spec, split_indices
from jacdistill.estimator import DirectRegressor
from jacdistill.metrics import r2
from jacdistill.options import STUDENT_INPUTS
from jacdistill.registry import registry
from jacdistill.tables import markdown_table


def fit(spec: str, seed: int) -> None:
    data = load_spec(spec)
    mean, std = data.X.mean(0), data.X.std(0)
    raw = [sympy.Symbol(name) for name in data.feature_names]
    inputs = {  # the columns a student sees, and each of its variables in the raw ones
        "raw": (data.X, raw),
        "scaled": (data.X / std, [v / s for v, s in zip(raw, std)]),
        "standardized": ((data.X - mean) / std, [(v - m) / s for v, m, s in zip(raw, mean, std)]),
    }
    for name, (X, in_raw) in inputs.items():
        student = registry().student("operon")(seed=seed)
        student.fit(np.ascontiguousarray(X, dtype=np.float32), np.ascontiguousarray(data.y, dtype=np.float32))
        expr = student.expression().xreplace(dict(zip(variables(X.shape[1]), in_raw)))
        solved = groundtruth.symbolic_solution(
            expr, data.formula, rows=dict(zip(data.feature_names, data.X.T))
        )
        print(
            f"{spec} seed {seed} {name:>12}: solution={solved}  {sympy.sstr(student.expression())}",
            flush=True,
        )


def measure_real(seeds: list[int]) -> list[dict]:
    rows = []
    for dataset in (row["name"] for row in bundled_datasets()):
        data = load_bundled(dataset)
        for student in ("gplearn", "operon"):
            for seed in seeds:
                split = split_indices(len(data.y), seed)
                row = {"dataset": dataset, "student": student, "seed": seed}
                for inputs in STUDENT_INPUTS:
                    est = DirectRegressor(student, seed=seed, student_inputs=inputs).fit(
                        data.X[split.train], data.y[split.train], data.X[split.val], data.y[split.val]
                    )
                    row[f"r2_{inputs}"] = r2(data.y[split.test], est.predict(data.X[split.test]))
                    row[f"complexity_{inputs}"] = int(est.complexity_)
                    row[f"length_{inputs}"] = count_nodes(est.formula_)
                rows.append(row)
                print(row, flush=True)
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per dataset and student: medians over seeds, scaled − standardized."""
    summary = []
    for key in dict.fromkeys((r["dataset"], r["student"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["student"]) == key]
        median = lambda f, mine=mine: statistics.median(f(r) for r in mine)
        summary.append(
            {
                "dataset": key[0],
                "student": key[1],
                "r2_standardized": median(lambda r: r["r2_standardized"]),
                "delta_r2": median(lambda r: r["r2_scaled"] - r["r2_standardized"]),
                "length_standardized": median(lambda r: r["length_standardized"]),
                "length_scaled": median(lambda r: r["length_scaled"]),
            }
        )
    return summary


COLUMNS = [
    ("dataset", "s"),
    ("student", "s"),
    ("r2_standardized", ".3f"),
    ("delta_r2", "+.3f"),
    ("length_standardized", ".1f"),
    ("length_scaled", ".1f"),
]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="feynman:I.14.4?n=1000&noise=0")
    parser.add_argument("--real", action="store_true", help="compare both inputs on the bundled datasets")
    parser.add_argument("--seeds", default=None, help="default: 0,1 (formula), 0,1,2 (--real)")
    parser.add_argument("--out", default=str(harness.RESULTS_DIR))
    args = parser.parse_args()
    seeds = [int(s) for s in (args.seeds or ("0,1,2" if args.real else "0,1")).split(",")]
    if args.real:
        rows = measure_real(seeds)
        summary = summarize(rows)
        settings = {"seeds": seeds, "students": "gplearn, operon (defaults)", "select": "parsimony=0.01"}
        path = harness.save("student_inputs", rows, settings, "cpu", Path(args.out), summary=summary)
        print(markdown_table(summary, COLUMNS))
        print(f"written to {path}")
    else:
        for seed in seeds:
            fit(args.spec, seed)
