"""Which selection rule should pick the formula from a student's front (issue 13, ``--select``)?

Every bundled dataset, students operon and gplearn at their defaults, λ = 0 teachers (the rule
is applied alike to every arm, so the baseline's fronts decide), seeds 0–2. Each fit records its
whole front (complexity, validation and test R²); every rule is then applied to the same fronts,
so rules differ only in the member they pick:

    python benchmarks/selection.py [--seeds 0,1,2] [--datasets a,b] [--out DIR]

Writes ``selection-cpu.json`` (the fronts and, per rule and student, the median chosen
complexity and the median test-R² loss against ``best``) and prints a Markdown table. Resumable:
fits already in the file are not redone.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from jacdistill import evaluation
from jacdistill.benchmarks import harness
from jacdistill.data import bundled_datasets, load_bundled
from jacdistill.fronts import Rule
from jacdistill.tables import markdown_table

RULES = ("best", "parsimony=0.001", "parsimony=0.005", "parsimony=0.01", "parsimony=0.02",
         "parsimony=0.05", "complexity=10", "complexity=20", "complexity=40")  # fmt: skip
STUDENTS = ("operon", "gplearn")


def measure(datasets: list[str], seeds: list[int], done: list[dict], save) -> list[dict]:
    fits = list(done)
    have = {(f["dataset"], f["student"], f["seed"]) for f in fits}
    for name in datasets:
        data = load_bundled(name)
        for student in STUDENTS:
            for seed in seeds:
                if (name, student, seed) in have:
                    continue
                params = {
                    "regularizer": "none",
                    "lam": 0.0,
                    "student": student,
                    "seed": seed,
                    "select": "best",
                }
                metrics = evaluation.fit_and_score(data, params).metrics
                fits.append({"dataset": name, "student": student, "seed": seed, "front": metrics["front"]})
                save(fits)
                print(name, student, seed, len(metrics["front"]), "members", flush=True)
    return fits


def chosen(front: list[dict], rule: str) -> dict:
    index = Rule.parse(rule).choose([m["complexity"] for m in front], [m["student_r2_val"] for m in front])
    return front[index]


def summarize(fits: list[dict]) -> list[dict]:
    """Per student and rule: median chosen complexity, median test R², and the median and worst
    test-R² change against the ``best`` rule's pick of the same front."""
    rows = []
    for student in STUDENTS:
        mine = [f for f in fits if f["student"] == student]
        for rule in RULES if mine else ():
            picks = [(chosen(f["front"], rule), chosen(f["front"], "best")) for f in mine]
            deltas = [p["student_r2_test"] - b["student_r2_test"] for p, b in picks]
            rows.append(
                {
                    "student": student,
                    "rule": rule,
                    "fits": len(picks),
                    "complexity": statistics.median(p["complexity"] for p, _ in picks),
                    "student_r2_test": statistics.median(p["student_r2_test"] for p, _ in picks),
                    "delta_vs_best": statistics.median(deltas),
                    "worst_delta": min(deltas),
                }
            )
    return rows


COLUMNS = [
    ("student", "s"),
    ("rule", "s"),
    ("fits", "d"),
    ("complexity", "g"),
    ("student_r2_test", ".4f"),
    ("delta_vs_best", "+.4f"),
    ("worst_delta", "+.4f"),
]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default=",".join(d["name"] for d in bundled_datasets()))
    parser.add_argument("--out", default=str(harness.RESULTS_DIR))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = {
        "seeds": seeds,
        "students": list(STUDENTS),
        "teacher": "λ = 0, defaults",
        "rules": list(RULES),
    }
    path = Path(args.out) / "selection-cpu.json"
    done = json.loads(path.read_text())["rows"] if path.exists() else []
    save = lambda fits: harness.save("selection", fits, settings, "cpu", args.out, summary=summarize(fits))
    fits = measure(args.datasets.split(","), seeds, done, save)
    print(markdown_table(summarize(fits), COLUMNS))
    print(f"written to {path}")
