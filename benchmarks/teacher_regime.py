"""Does the smoothness study's ``converged`` regime give the paper's irregular teacher?

The paper's later versions say standard networks "learn accurate but highly irregular functions";
the study's ``converged`` regime (all epochs, the last weights kept) is meant to be that network
and ``early`` (the best validation epoch kept) the smoother one. This measures it: for every
bundled dataset, the teachers of both regimes exactly as the study trains them (its split,
architecture, epochs and penalty), at λ ∈ {0, 1e-3, 1e-2}, with

- teacher R² on the training and test rows (their gap: how much the teacher overfits);
- roughness: mean ‖∂f/∂x‖²_F over the test rows in standardized units, computed in float64 by
  ``torch.func.jacrev`` (independent of the penalty's own code);
- the epoch whose weights were kept.

    python benchmarks/teacher_regime.py [--seeds 0,1,2,3,4] [--datasets a,b] [--out DIR]

Writes ``teacher_regime-cpu.json`` (resumable: teachers already there are not retrained) and
prints, per dataset, medians over seeds of the λ = 0 teachers of both regimes (kept epoch, test
R², the converged teacher's train − test R² gap, roughness) and the roughness of the λ = 1e-2
teachers relative to them (``smoothed_*``).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from torch.func import jacrev, vmap

from jacdistill import evaluation
from jacdistill.benchmarks import harness
from jacdistill.data import load_bundled, split_indices
from jacdistill.estimator import Distiller
from jacdistill.metrics import r2
from jacdistill.search import Search
from jacdistill.tables import markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smoothness_study import REAL, Config  # noqa: E402  (the study's settings, not a copy)

LAMS = (0.0, 1e-3, 1e-2)
REGIMES = ("early", "converged")


def roughness(model: torch.nn.Module, X: np.ndarray) -> float:
    """Mean over rows of ‖∂f/∂x‖²_F, in float64."""
    exact = copy.deepcopy(model).double()
    jac = vmap(jacrev(lambda x: exact(x[None])[0]))(torch.as_tensor(X, dtype=torch.float64))
    return float(jac.detach().pow(2).sum(dim=(1, 2)).mean())


def teachers(name: str, regime: str, seed: int) -> list[dict]:
    """The study's teachers of ``regime`` for one dataset and seed, one record per λ."""
    data = load_bundled(name)
    split = split_indices(len(data.y), seed)
    est = Distiller(**Config("real", regime).spec().params("operon", seed))
    parts = {"train": split.train, "val": split.val, "test": split.test}
    rows = {part: (evaluation.frame(data, idx), data.y[idx]) for part, idx in parts.items()}
    problem, _ = est.problem(*rows["train"], *rows["val"])
    scaled = {
        part: (est.x_scaler_.transform(X.to_numpy()), est.y_scaler_.transform(y[:, None])[:, 0])
        for part, (X, y) in rows.items()
    }
    records = []
    for trial in Search(problem).teachers(LAMS):
        with torch.no_grad():
            pred = {part: trial.model(torch.as_tensor(X, dtype=torch.float32)).numpy()[:, 0]
                    for part, (X, _) in scaled.items()}  # fmt: skip
        records.append(
            {
                "dataset": name,
                "regime": regime,
                "seed": seed,
                "lam": trial.lam,
                "kept_epoch": trial.training.best_epoch,
                "epochs_run": trial.training.epochs_run,
                "r2_train": r2(scaled["train"][1], pred["train"]),
                "r2_test": r2(scaled["test"][1], pred["test"]),
                "roughness_test": roughness(trial.model, scaled["test"][0]),
            }
        )
    return records


def summarize(rows: list[dict]) -> list[dict]:
    """Per dataset, medians over seeds: the λ = 0 teachers of both regimes side by side, and how
    much λ = 1e-2 smooths each (its roughness over the λ = 0 teacher's)."""
    out = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        runs = [r for r in rows if r["dataset"] == name]
        if {r["regime"] for r in runs} != set(REGIMES):
            continue
        median = lambda regime, lam, key, runs=runs: statistics.median(
            r[key] for r in runs if (r["regime"], r["lam"]) == (regime, lam)
        )
        rough = {(g, lam): median(g, lam, "roughness_test") for g in REGIMES for lam in (0, 0.01)}
        out.append(
            {
                "dataset": name,
                "epoch_early": median("early", 0, "kept_epoch"),
                "test_early": median("early", 0, "r2_test"),
                "test_converged": median("converged", 0, "r2_test"),
                "gap_converged": median("converged", 0, "r2_train") - median("converged", 0, "r2_test"),
                "rough_early": rough["early", 0],
                "rough_converged": rough["converged", 0],
                "smoothed_early": rough["early", 1e-2] / rough["early", 0],
                "smoothed_converged": rough["converged", 1e-2] / rough["converged", 0],
            }
        )
    return out


COLUMNS = [
    ("dataset", "s"),
    ("epoch_early", "g"),
    ("test_early", ".3f"),
    ("test_converged", ".3f"),
    ("gap_converged", "+.3f"),
    ("rough_early", ".3g"),
    ("rough_converged", ".3g"),
    ("smoothed_early", ".2f"),
    ("smoothed_converged", ".2f"),
]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--datasets", default=",".join(REAL))
    parser.add_argument("--out", default=str(harness.RESULTS_DIR))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = {"seeds": seeds, "lams": list(LAMS), "regimes": list(REGIMES)}
    path = Path(args.out) / "teacher_regime-cpu.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    done = {(r["dataset"], r["regime"], r["seed"]) for r in rows}
    for name in args.datasets.split(","):
        for regime in REGIMES:
            for seed in (s for s in seeds if (name, regime, s) not in done):
                rows += teachers(name, regime, seed)
                harness.save("teacher_regime", rows, settings, "cpu", args.out, summary=summarize(rows))
                print(name, regime, seed, flush=True)
    print(markdown_table(summarize(rows), COLUMNS))
    print(f"written to {path}")
