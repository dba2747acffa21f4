"""The sweep's statistics: paired comparisons of arms over seeds and over datasets, per-arm summaries,
and the same comparisons under complexity caps.

Every comparison (treatment − reference, on the student's test R²) is paired: it uses only the
(dataset, seed) pairs present in both arms with a finite student test R² in both.

Per dataset, the seed-paired differences go through a two-sided Wilcoxon signed-rank test at
``ALPHA`` = 0.1: with 5 seeds the smallest exact two-sided p is 2/2⁵ = 0.0625, so α = 0.05 could
never be met; a win at α = 0.1 with 5 seeds still needs every seed to improve. With 3 or 4 seeds the
smallest p is 0.25 or 0.125, so no dataset can be significant; fewer than ``MIN_PAIRS`` pairs, or
differences that are all zero, count as a tie without a test. Beside the test stands the mean ΔR²
with a 95 % percentile-bootstrap interval over the seed-paired differences (``bootstrap_ci``): the
size of the effect, which a tie does not say. With 5 seeds it is too narrow (the percentile interval
of a mean of n values has about the width of mean ± 1.96·sd·√((n−1)/n)/√n and only 126 distinct
resamples): read it as a scale, not as a guarantee of 95 % coverage.

Over datasets, the estimate is the mean over datasets of the per-dataset mean ΔR² (each dataset
counts once, whatever its seeds), with a percentile-bootstrap interval that resamples datasets, and
a two-sided Wilcoxon signed-rank test over the per-dataset mean ΔR² at ``ALPHA_DATASETS`` = 0.05
(datasets are the independent units, as in Demšar 2006; with 6 or more datasets 0.05 can be met).
Resampling datasets alone, not datasets and then seeds, is deliberate: a per-dataset mean already
carries its seeds' noise, so resampling seeds again would count that noise twice and widen the
interval (Davison & Hinkley 1997, §3.8). Fewer than ``MIN_PAIRS`` datasets give no interval and
no test. Every bootstrap draws from ``numpy.random.default_rng(SEED)`` afresh, so the report is
deterministic and one interval does not depend on which were computed before it.

``mean_relative_gain`` is the paper's headline: per dataset (mean treatment R² − mean reference R²)
/ |mean reference R²|, averaged over datasets. A small reference R² inflates it (0.05 → 0.10 is
+100 %), so ``median_delta_r2`` (the median over datasets of the mean ΔR²) stands beside it, with its own
bootstrap interval (``median_ci``, datasets resampled): a single formula that extrapolates wildly on
a small test set moves a mean over datasets by tenths of R², the median hardly at all.

Under a complexity cap K (``CAPS``), a trial's value is the test R² of the best-on-validation member
of its front with complexity ≤ K (:func:`jacdistill.report.loading.capped_r2`); the comparisons are
the same, over the pairs with a value in both arms.

On generated problems with a known formula (trials that record ``solution``), :func:`ground_truth`
adds per student and arm the symbolic solution rate, solved / decided, with a Wilson score interval
(it stays within [0, 1] and is not empty at 0 or all solved, unlike the normal one); undecided trials
(the test ran out of time) are counted but left out of the rate, as they say nothing either way. The
comparisons above are repeated on the student's test R² against the noiseless target.
"""

from __future__ import annotations

import math
import re
import statistics
import warnings
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from jacdistill.report.loading import CAPS, arms_in, capped_r2, failed, finite, has_front
from jacdistill.trials import REFERENCES, TREATMENTS

ALPHA = 0.1
ALPHA_DATASETS = 0.05
MIN_PAIRS = 3
ZERO = 1e-12  # |ΔR²| at or below this is a zero difference (dropped by the Wilcoxon test)
LEVEL = 0.95
RESAMPLES = 10_000
SEED = 0
TEST = (
    "scipy.stats.wilcoxon, two-sided, zero_method='wilcox' (zero differences dropped), "
    "method='auto', paired over seeds per dataset and over the per-dataset mean ΔR² across datasets"
)
BOOTSTRAP = (
    f"percentile bootstrap of the mean, {RESAMPLES} resamples from numpy default_rng({SEED}), "
    f"{100 * LEVEL:g} % level: over the seed-paired ΔR² per dataset, over datasets' mean ΔR² across them; "
    "across datasets also the same bootstrap of their median"
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


def bootstrap_ci(
    values: Sequence[float],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    statistic: str = "mean",
) -> list[float] | None:
    """[low, high]: the percentile-bootstrap interval of the mean (or ``statistic="median"``) of
    ``values`` (``resamples`` resamples with replacement, drawn from
    ``numpy.random.default_rng(seed)``); None below ``MIN_PAIRS`` values, where resampling says
    nothing about the spread."""
    x = np.asarray(values, dtype=float)
    if len(x) < MIN_PAIRS:
        return None
    drawn = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))]
    estimates = np.median(drawn, axis=1) if statistic == "median" else drawn.mean(axis=1)
    low, high = np.quantile(estimates, [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


def _outcome(p: float | None, mean_delta: float, alpha: float) -> str:
    significant = p is not None and p < alpha
    return "win" if significant and mean_delta > 0 else "loss" if significant and mean_delta < 0 else "tie"


def selected_r2(trial: dict, key: str = "student_r2_test") -> float | None:
    """The trial's own student test R² (its selected formula's), or its ``key``."""
    return finite(trial.get(key))


true_r2 = partial(selected_r2, key="student_r2_test_true")  # against the noiseless target


def compare(
    treatment: list[dict],
    reference: list[dict],
    alpha: float = ALPHA,
    value: Callable[[dict], float | None] = selected_r2,
) -> dict:
    """Treatment − reference ``value`` (the student test R² unless given), paired on (dataset, seed);
    one student's trials.

    Returns ``mean_relative_gain``, ``median_delta_r2`` (None with no dataset), ``wins``, ``ties``,
    ``losses`` (per-dataset outcomes), ``n_datasets``, ``n_pairs``, ``excluded_pairs`` (pairs
    without a value in both), ``per_dataset`` (one row per dataset: the seeds, both mean R², mean
    ΔR² and its bootstrap ``ci``, relative gain, p, outcome) and, over datasets, ``mean_delta_r2``
    (None with no dataset), its bootstrap ``ci``, the Wilcoxon ``p_value`` and ``outcome`` at
    ``ALPHA_DATASETS``; ``median_ci``, the bootstrap interval of the median over datasets, robust to
    the heavy tails one extrapolating formula gives a mean.
    """
    a = {(t["dataset"], t["seed"]): t for t in treatment}
    b = {(t["dataset"], t["seed"]): t for t in reference}
    by_dataset: dict[str, list[tuple[int, float, float]]] = {}
    excluded = 0
    for dataset, seed in sorted(set(a) & set(b)):
        ya, yb = value(a[dataset, seed]), value(b[dataset, seed])
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
        rows.append(
            {
                "dataset": dataset,
                "n": len(seeds),
                "seeds": seeds,
                "treatment_r2": mean_a,
                "reference_r2": mean_b,
                "mean_delta_r2": mean_delta,
                "ci": bootstrap_ci(deltas),
                "relative_gain": (mean_a - mean_b) / abs(mean_b) if mean_b != 0 else None,
                "p_value": p,
                "outcome": _outcome(p, mean_delta, alpha),
            }
        )
    gains = [row["relative_gain"] for row in rows if row["relative_gain"] is not None]
    means = [row["mean_delta_r2"] for row in rows]
    pooled = statistics.fmean(means) if rows else None
    p_datasets = _wilcoxon(means)
    return {
        "mean_relative_gain": statistics.fmean(gains) if gains else None,
        "median_delta_r2": statistics.median(means) if rows else None,
        "median_ci": bootstrap_ci(means, statistic="median"),
        "wins": sum(r["outcome"] == "win" for r in rows),
        "ties": sum(r["outcome"] == "tie" for r in rows),
        "losses": sum(r["outcome"] == "loss" for r in rows),
        "n_datasets": len(rows),
        "n_pairs": sum(r["n"] for r in rows),
        "excluded_pairs": excluded,
        "per_dataset": rows,
        "mean_delta_r2": pooled,
        "ci": bootstrap_ci(means),
        "p_value": p_datasets,
        "outcome": _outcome(p_datasets, pooled or 0.0, ALPHA_DATASETS),
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


def _by_arm(trials: list[dict]) -> dict[str, list[dict]]:
    return {arm: [t for t in trials if t["arm"] == arm] for arm in arms_in(trials)}


def _comparisons(
    by_arm: dict[str, list[dict]], arm: str, value: Callable[[dict], float | None] = selected_r2
) -> dict:
    """``vs_baseline``, ``vs_direct``, ``vs_control``: :func:`compare` of ``arm`` against each on
    ``value``; None where either arm is absent."""
    return {
        f"vs_{ref}": compare(by_arm[arm], by_arm[ref], value=value)
        if arm in by_arm and ref in by_arm
        else None
        for ref in REFERENCES
    }


def _treatment_block(by_arm: dict[str, list[dict]], arm: str) -> dict:
    """One treatment arm against baseline (flat headline keys), direct and control; a key or
    block is None where an arm it needs is absent."""
    blocks = _comparisons(by_arm, arm)
    get = lambda ref, key: blocks[f"vs_{ref}"][key] if blocks[f"vs_{ref}"] is not None else None
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
        **blocks,
    }


def capped(by_arm: dict[str, list[dict]]) -> dict | None:
    """One student's trials under the complexity caps, None where no trial recorded a front: per
    arm (``arms``) the trials with a front and, over them, mean ± std of the capped test R² at each
    cap (keys ``"10"``, …) and of the selected formula's (``selected``); per cap (``comparisons``)
    each treatment's comparison blocks ``vs_baseline``, ``vs_direct``, ``vs_control`` (None where
    that arm is absent), as :func:`compare` makes them from the capped test R²."""
    fronted = {arm: [t for t in ts if has_front(t)] for arm, ts in by_arm.items()}
    if not any(fronted.values()):
        return None
    return {
        "arms": {
            arm: {
                "fronts": len(ts),
                **{str(cap): _stats(capped_r2(t, cap) for t in ts) for cap in CAPS},
                "selected": _stats(selected_r2(t) for t in ts),
            }
            for arm, ts in fronted.items()
            if ts
        },
        "comparisons": {
            str(cap): {
                arm: _comparisons(by_arm, arm, partial(capped_r2, cap=cap))
                for arm in TREATMENTS
                if arm in by_arm
            }
            for cap in CAPS
        },
    }


def wilson_interval(solved: int, decided: int, level: float = LEVEL) -> list[float] | None:
    """[low, high]: the Wilson score interval of the proportion ``solved`` / ``decided``; None when
    nothing was decided."""
    if decided == 0:
        return None
    z = statistics.NormalDist().inv_cdf((1 + level) / 2)
    p, z2 = solved / decided, z * z / decided
    centre = (p + z2 / 2) / (1 + z2)
    half = z / (1 + z2) * math.sqrt(p * (1 - p) / decided + z2 / (4 * decided))
    # exactly 0 and 1 at the ends, where rounding would leave ±1e-17
    return [0.0 if solved == 0 else centre - half, 1.0 if solved == decided else centre + half]


def solution_rate(trials: list[dict], key: str = "solution") -> dict:
    """Of the trials that record ``key`` (``solution``: the formula shown;
    ``solution_full_precision``: its constants as fitted): ``solved`` (True), ``decided`` (True or
    False), ``undecided`` (None: out of time, left out of the rate), ``n_trials``, ``rate`` =
    solved / decided (None with none decided) and its Wilson ``ci``."""
    recorded = [t[key] for t in trials if key in t]
    solved = sum(v is True for v in recorded)
    decided = solved + sum(v is False for v in recorded)
    return {
        "solved": solved,
        "decided": decided,
        "undecided": len(recorded) - decided,
        "n_trials": len(recorded),
        "rate": solved / decided if decided else None,
        "ci": wilson_interval(solved, decided),
    }


_NUMBER = r"\d+(?:\.\d*)?(?:e[+-]?\d+)?"  # a noise level as a problem's name writes it


def problem_size(dataset: str) -> dict:
    """``noise`` and ``n`` of a generated problem from its name (``feynman-I.6.2-n100-noise0.1``);
    a Feynman name leaves out keys at their default, so those take it; None where a name says
    nothing."""
    n = re.search(r"-n(\d+)(?=-|$)", dataset)
    noise = re.search(rf"-noise({_NUMBER})(?=-|$)", dataset)
    size = {"noise": float(noise[1]) if noise else None, "n": int(n[1]) if n else None}
    if dataset.startswith("feynman-"):
        from jacdistill.feynman import DEFAULTS  # imports sympy: only for such names

        size = {key: DEFAULTS[key] if value is None else value for key, value in size.items()}
    return size


def problem_equation(dataset: str) -> str:
    """A generated problem's name without its size, noise and data seed: the equation it samples
    (``feynman-I.6.2-n100-noise0.1`` → ``feynman-I.6.2``); other names unchanged."""
    return re.sub(rf"-(?:n\d+|noise{_NUMBER}|seed\d+)(?=-|$)", "", dataset)


def ground_truth(trials: list[dict]) -> dict | None:
    """Per student, over the trials that record ``solution`` (generated problems): per arm the
    :func:`solution_rate` (``solution_rate``; ``solution_rate_full_precision``: of the unrounded
    formulas, over the trials that record it), the same per noise level and n (``by_problem``, one
    row per pair the names carry, see :func:`problem_size`), both rates per equation
    (``by_equation``, see :func:`problem_equation`), and per treatment arm (``comparisons``)
    its ``vs_baseline``, ``vs_direct``, ``vs_control`` blocks as :func:`compare` makes them from the
    student's test R² against the noiseless target. None when no trial records ``solution``."""
    known = [t for t in trials if "solution" in t]
    if not known:
        return None
    students = {}
    for student in sorted({t["student"] for t in known}):
        mine = [t for t in known if t["student"] == student]
        by_arm = _by_arm(mine)
        groups: dict[tuple, list[dict]] = {}
        equations: dict[str, list[dict]] = {}
        for t in mine:
            groups.setdefault(tuple(problem_size(t["dataset"]).values()), []).append(t)
            equations.setdefault(problem_equation(t["dataset"]), []).append(t)
        students[student] = {
            "solution_rate": {arm: solution_rate(ts) for arm, ts in by_arm.items()},
            "solution_rate_full_precision": {
                arm: solution_rate(ts, "solution_full_precision") for arm, ts in by_arm.items()
            },
            "by_problem": [
                {
                    "noise": noise,
                    "n": n,
                    "arms": {arm: solution_rate(ts) for arm, ts in _by_arm(group).items()},
                }
                for (noise, n), group in sorted(
                    groups.items(),
                    key=lambda item: [(v is None, v or 0) for v in item[0]],  # unknown last
                )
            ],
            "by_equation": [
                {
                    "equation": equation,
                    "arms": {arm: solution_rate(ts) for arm, ts in _by_arm(group).items()},
                    "arms_full_precision": {
                        arm: solution_rate(ts, "solution_full_precision")
                        for arm, ts in _by_arm(group).items()
                    },
                }
                for equation, group in sorted(equations.items())
            ],
            "comparisons": {arm: _comparisons(by_arm, arm, true_r2) for arm in TREATMENTS if arm in by_arm},
        }
    return {"n_trials": len(known), "datasets": sorted({t["dataset"] for t in known}), "students": students}


def aggregate(trials: list[dict]) -> dict:
    """Per student: "regularized" against "baseline" (the flat keys ``mean_relative_gain``,
    ``median_delta_r2``, ``wins``, ``ties``, ``losses``, plus ``median_delta_r2_vs_direct`` and
    ``median_delta_r2_vs_control``; ``median_delta_teacher_r2`` and ``median_delta_fidelity_r2``:
    did the teacher keep its accuracy, did the student follow it more closely), the full comparison
    blocks ``vs_baseline``, ``vs_direct`` and ``vs_control``, and the same for "augmented" under
    ``augmented`` (None without that arm); under ``caps`` the same comparisons at each complexity
    cap (:func:`capped`; None without fronts). Under ``ground_truth`` (None without generated
    problems) the solution rates and comparisons against the noiseless target (:func:`ground_truth`).
    Trials whose student test R² is null are failures: counted per arm, excluded pairwise."""
    students = {}
    for student in sorted({t["student"] for t in trials}):
        mine = [t for t in trials if t["student"] == student]
        by_arm = _by_arm(mine)
        block = _treatment_block(by_arm, "regularized")
        block.pop("treatment")
        students[student] = {
            "arms": list(by_arm),
            "datasets": sorted({t["dataset"] for t in mine}),
            "n_trials": len(mine),
            "failures": {arm: sum(failed(t) for t in ts) for arm, ts in by_arm.items()},
            **block,
            "augmented": _treatment_block(by_arm, "augmented") if "augmented" in by_arm else None,
            "caps": capped(by_arm),
        }
    return {
        "alpha": ALPHA,
        "alpha_datasets": ALPHA_DATASETS,
        "test": TEST,
        "bootstrap": BOOTSTRAP,
        "min_pairs": MIN_PAIRS,
        "caps": list(CAPS),
        "n_fronts": sum(has_front(t) for t in trials),
        "n_trials": len(trials),
        "n_failures": sum(failed(t) for t in trials),
        "datasets": sorted({t["dataset"] for t in trials}),
        "arms": arms_in(trials),
        "seeds": sorted({t["seed"] for t in trials}),
        "students": students,
        "ground_truth": ground_truth(trials),
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
