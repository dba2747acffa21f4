"""The random penalties' candidates trained together: an 8-λ grid's teachers as one stack
(batched) against one after another (sequential) and against one teacher, for ``hutchinson``
(each mode) and ``hessian`` beside ``jacobian``, the section ``grid`` of ``benchmarks/e2e.py``
per penalty (airfoil, 5-64-64-1 silu, no early stopping, interleaved rounds, medians; torch on
one thread). Each member draws its probes from its own stream, so both orders train the same
teachers (``tests/test_batched.py``).

    python benchmarks/stacked_penalties.py [--epochs 30] [--rounds 3] [--out DIR]

Writes ``stacked_penalties-cpu.json`` and prints, per penalty, seconds and the ratios.
"""

from __future__ import annotations

import argparse

import torch

from jacdistill.benchmarks import e2e, harness

PENALTIES = {
    "jacobian": {},
    "hutchinson jvp": {"regularizer": "hutchinson", "regularizer_options": {"mode": "jvp"}},
    "hutchinson vjp": {"regularizer": "hutchinson", "regularizer_options": {"mode": "vjp"}},
    "hutchinson fd": {"regularizer": "hutchinson", "regularizer_options": {"mode": "fd"}},
    "hessian": {"regularizer": "hessian"},
}


def measure(epochs: int, rounds: int) -> tuple[list[dict], dict]:
    torch.set_num_threads(1)
    plan = e2e.Plan(grid_epochs=epochs, grid_rounds=rounds)
    rows, ratios = [], {}
    for label, penalty in PENALTIES.items():
        found = e2e.grid_section(plan, print, {**e2e.TEACHER, **penalty})
        rows += [{**row, "penalty": label} for row in found]
        by_mode = {row["mode"]: row for row in found}
        ratios[label] = {}
        for key, suffix in (("seconds", ""), ("cpu_s", "_cpu")):  # CPU s: what other work moves less
            one, batched, sequential = (by_mode[mode][key] for mode in ("one", "batched", "sequential"))
            ratios[label][f"batched_vs_one{suffix}"] = batched / one
            ratios[label][f"sequential_vs_one{suffix}"] = sequential / one
            ratios[label][f"sequential_vs_batched{suffix}"] = sequential / batched
    return rows, ratios


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(harness.RESULTS_DIR))
    args = parser.parse_args()
    rows, ratios = measure(args.epochs, args.rounds)
    settings = {"epochs": args.epochs, "rounds": args.rounds, "grid": list(e2e.GRID), "penalties": PENALTIES}
    path = harness.save("stacked_penalties", rows, settings, "cpu", args.out, ratios=ratios)
    header = ("one s", 8), ("batched 8 s", 13), ("sequential 8 s", 16), ("seq/batched", 13), ("(CPU s)", 9)
    print(f"{'penalty':<16}" + "".join(f"{name:>{width}}" for name, width in header))
    for label, ratio in ratios.items():
        seconds = {r["mode"]: r["seconds"] for r in rows if r["penalty"] == label}
        print(
            f"{label:<16}{seconds['one']:>8.2f}{seconds['batched']:>13.2f}{seconds['sequential']:>16.2f}"
            f"{ratio['sequential_vs_batched']:>13.2f}{ratio['sequential_vs_batched_cpu']:>9.2f}"
        )
    print(f"written to {path}")
