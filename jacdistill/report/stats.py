"""The sweep's statistics: paired comparisons of arms over seeds, and per-arm summaries.

Every comparison (treatment − reference, on the student's test R²) is paired: it uses only the
(dataset, seed) pairs present in both arms with a finite student test R² in both. Per dataset, the
seed-paired differences go through a two-sided Wilcoxon signed-rank test at ``ALPHA`` = 0.1: with 5
seeds the smallest exact two-sided p is 2/2⁵ = 0.0625, so α = 0.05 could never be met; a win at
α = 0.1 with 5 seeds still needs every seed to improve. With 3 or 4 seeds the smallest p is 0.25 or
0.125, so no dataset can be significant; fewer than ``MIN_PAIRS`` pairs, or differences that are
all zero, count as a tie without a test.

``mean_relative_gain`` is the paper's headline: per dataset (mean treatment R² − mean reference R²)
/ |mean reference R²|, averaged over datasets. A small reference R² inflates it (0.05 → 0.10 is
+100 %), so ``median_delta_r2`` (the median over datasets of the mean ΔR²) stands beside it.
"""

from __future__ import annotations

import math
import statistics
import warnings

from jacdistill.report.loading import arms_in, failed, finite
from jacdistill.trials import REFERENCES

ALPHA = 0.1
MIN_PAIRS = 3
ZERO = 1e-12  # |ΔR²| at or below this is a zero difference (dropped by the Wilcoxon test)
TEST = (
    "scipy.stats.wilcoxon, two-sided, zero_method='wilcox' (zero differences dropped), "
    "method='auto', paired over seeds per dataset"
)


def _wilcoxon(deltas: list[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p of paired differences; None (a tie) for fewer than
    ``MIN_PAIRS`` pairs or differences that are all zero."""
    from scipy.stats import wilcoxon

    cleaned = [0.0 if abs(d) <= ZERO else d for d in deltas]
    if len(cleaned) < MIN_PAIRS or not any(cleaned):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            p = float(wilcoxon(cleaned, alternative="two-sided").pvalue)
        except ValueError:
            return None
    return p if math.isfinite(p) else None


def compare(treatment: list[dict], reference: list[dict], alpha: float = ALPHA) -> dict:
    """Treatment − reference student test R², paired on (dataset, seed); one student's trials.

    Returns ``mean_relative_gain``, ``median_delta_r2`` (None with no dataset), ``wins``, ``ties``,
    ``losses``, ``n_datasets``, ``n_pairs``, ``excluded_pairs`` (pairs with a failed trial) and
    ``per_dataset`` (one row per dataset: the seeds, both mean R², mean ΔR², relative gain, p,
    outcome).
    """
    a = {(t["dataset"], t["seed"]): t for t in treatment}
    b = {(t["dataset"], t["seed"]): t for t in reference}
    by_dataset: dict[str, list[tuple[int, float, float]]] = {}
    excluded = 0
    for dataset, seed in sorted(set(a) & set(b)):
        ya, yb = (
            finite(a[dataset, seed].get("student_r2_test")),
            finite(b[dataset, seed].get("student_r2_test")),
        )
        if ya is None or yb is None:
            excluded += 1
            continue
        by_dataset.setdefault(dataset, []).append((seed, ya, yb))
    rows = []
    for dataset, items in sorted(by_dataset.items()):
        seeds, ya, yb = (list(column) for column in zip(*items))
        mean_a, mean_b = statistics.fmean(ya), statistics.fmean(yb)
        deltas = [x - y for x, y in zip(ya, yb)]
        mean_delta = statistics.fmean(deltas)
        p = _wilcoxon(deltas)
        significant = p is not None and p < alpha
        outcome = (
            "win" if significant and mean_delta > 0 else "loss" if significant and mean_delta < 0 else "tie"
        )
        rows.append(
            {
                "dataset": dataset,
                "n": len(seeds),
                "seeds": seeds,
                "treatment_r2": mean_a,
                "reference_r2": mean_b,
                "mean_delta_r2": mean_delta,
                "relative_gain": (mean_a - mean_b) / abs(mean_b) if mean_b != 0 else None,
                "p_value": p,
                "outcome": outcome,
            }
        )
    gains = [row["relative_gain"] for row in rows if row["relative_gain"] is not None]
    return {
        "mean_relative_gain": statistics.fmean(gains) if gains else None,
        "median_delta_r2": statistics.median(r["mean_delta_r2"] for r in rows) if rows else None,
        "wins": sum(r["outcome"] == "win" for r in rows),
        "ties": sum(r["outcome"] == "tie" for r in rows),
        "losses": sum(r["outcome"] == "loss" for r in rows),
        "n_datasets": len(rows),
        "n_pairs": sum(r["n"] for r in rows),
        "excluded_pairs": excluded,
        "per_dataset": rows,
    }


def median_paired_delta(treatment: list[dict], reference: list[dict], key: str) -> float | None:
    """Median over datasets of the mean seed-paired difference in ``key`` (e.g. the teacher's test
    R²), over the (dataset, seed) pairs with a finite value in both; None with none."""
    a = {(t["dataset"], t["seed"]): finite(t.get(key)) for t in treatment}
    b = {(t["dataset"], t["seed"]): finite(t.get(key)) for t in reference}
    by_dataset: dict[str, list[float]] = {}
    for pair in set(a) & set(b):
        if a[pair] is not None and b[pair] is not None:
            by_dataset.setdefault(pair[0], []).append(a[pair] - b[pair])
    return statistics.median(statistics.fmean(d) for d in by_dataset.values()) if by_dataset else None


def _treatment_block(by_arm: dict[str, list[dict]], arm: str) -> dict:
    """One treatment arm against baseline (flat headline keys), direct and control; a key or
    block is None where an arm it needs is absent."""
    blocks = {
        ref: compare(by_arm[arm], by_arm[ref]) if arm in by_arm and ref in by_arm else None
        for ref in REFERENCES
    }
    get = lambda ref, key: blocks[ref][key] if blocks[ref] is not None else None
    return {
        "treatment": arm,
        "mean_relative_gain": get("baseline", "mean_relative_gain"),
        "median_delta_r2": get("baseline", "median_delta_r2"),
        "wins": get("baseline", "wins"),
        "ties": get("baseline", "ties"),
        "losses": get("baseline", "losses"),
        "median_delta_r2_vs_direct": get("direct", "median_delta_r2"),
        "median_delta_r2_vs_control": get("control", "median_delta_r2"),
        **{
            f"median_delta_{key}": median_paired_delta(by_arm[arm], by_arm["baseline"], f"{key}_test")
            if arm in by_arm and "baseline" in by_arm
            else None
            for key in ("teacher_r2", "fidelity_r2")
        },
        **{f"vs_{ref}": blocks[ref] for ref in REFERENCES},
    }


def aggregate(trials: list[dict]) -> dict:
    """Per student: "regularized" against "baseline" (the flat keys ``mean_relative_gain``,
    ``median_delta_r2``, ``wins``, ``ties``, ``losses``, plus ``median_delta_r2_vs_direct`` and
    ``median_delta_r2_vs_control``; ``median_delta_teacher_r2`` and ``median_delta_fidelity_r2``:
    did the teacher keep its accuracy, did the student follow it more closely), the full comparison
    blocks ``vs_baseline``, ``vs_direct`` and ``vs_control``, and the same for "augmented" under
    ``augmented`` (None without that arm).
    Trials whose student test R² is null are failures: counted per arm, excluded pairwise."""
    students = {}
    for student in sorted({t["student"] for t in trials}):
        mine = [t for t in trials if t["student"] == student]
        by_arm = {arm: [t for t in mine if t["arm"] == arm] for arm in arms_in(mine)}
        block = _treatment_block(by_arm, "regularized")
        block.pop("treatment")
        students[student] = {
            "arms": list(by_arm),
            "datasets": sorted({t["dataset"] for t in mine}),
            "n_trials": len(mine),
            "failures": {arm: sum(failed(t) for t in ts) for arm, ts in by_arm.items()},
            **block,
            "augmented": _treatment_block(by_arm, "augmented") if "augmented" in by_arm else None,
        }
    return {
        "alpha": ALPHA,
        "test": TEST,
        "min_pairs": MIN_PAIRS,
        "n_trials": len(trials),
        "n_failures": sum(failed(t) for t in trials),
        "datasets": sorted({t["dataset"] for t in trials}),
        "arms": arms_in(trials),
        "seeds": sorted({t["seed"] for t in trials}),
        "students": students,
    }


def _stats(values) -> dict:
    """Mean and sample standard deviation (ddof 1; None below 2 values) of the finite values."""
    numbers = [v for v in (finite(x) for x in values) if v is not None]
    return {
        "mean": statistics.fmean(numbers) if numbers else None,
        "std": statistics.stdev(numbers) if len(numbers) > 1 else None,
        "n": len(numbers),
    }


def per_dataset(trials: list[dict]) -> list[dict]:
    """One row per (dataset, student): per arm the seeds, the failures, mean ± std over seeds of
    teacher, student and fidelity test R², complexity and seconds, and the chosen λ as median,
    min and max (λ spans decades, so not mean ± std)."""
    rows = []
    for dataset, student in sorted({(t["dataset"], t["student"]) for t in trials}):
        mine = [t for t in trials if t["dataset"] == dataset and t["student"] == student]
        arms = {}
        for arm in arms_in(mine):
            ts = [t for t in mine if t["arm"] == arm]
            lams = [v for v in (finite(t.get("lam")) for t in ts) if v is not None]
            arms[arm] = {
                "n": len(ts),
                "seeds": [t["seed"] for t in ts],
                "failures": sum(failed(t) for t in ts),
                **{
                    key: _stats(t.get(key) for t in ts)
                    for key in (
                        "teacher_r2_test",
                        "student_r2_test",
                        "fidelity_r2_test",
                        "complexity",
                        "seconds",
                    )
                },
                "lam": {"median": statistics.median(lams), "min": min(lams), "max": max(lams)}
                if lams
                else None,
            }
            if arm == "control":
                arms[arm]["candidates"] = _stats(t.get("candidates") for t in ts)
        rows.append({"dataset": dataset, "student": student, "arms": arms})
    return rows
