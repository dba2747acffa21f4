"""Why does no student recover a Feynman formula? What centring the inputs does to a formula.

Students are fitted on standardized inputs ((x − mean) / std) by default; a monomial such as k·x²/2 becomes a
product of affine factors there: longer, so a length-penalized choice passes it over, and even when
found, its fitted constants do not round back to the truth's in the raw variables. This fits
Operon (its defaults) to one generated problem's rows three ways, raw, scaled only (x / std) and
standardized, and prints each expression and whether it is a symbolic solution of the truth in
the raw variables. What it found is why ``student_inputs="scaled"`` exists:

    python benchmarks/student_inputs.py [--spec feynman:I.14.4?n=1000&noise=0] [--seeds 0,1]
"""

from __future__ import annotations

import argparse

import numpy as np
import sympy

from jacdistill import groundtruth
from jacdistill.contracts import variables
from jacdistill.data import load_spec
from jacdistill.registry import registry


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="feynman:I.14.4?n=1000&noise=0")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        fit(args.spec, seed)
