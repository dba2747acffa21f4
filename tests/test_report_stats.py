"""The report's intervals, its test across datasets, the complexity-cap rule and the forest plot, on
cases whose answer is known without the code: constant differences, a large normal sample,
hand-made fronts, datasets that all improve."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import numpy as np
import pytest

from jacdistill import report
from jacdistill.report.loading import CAPS, capped_r2, load_trials
from jacdistill.report.plots import FRONTS_PLOT, MAX_INCHES, PLOTS, plot_forest, plot_fronts
from jacdistill.report.stats import (
    ALPHA_DATASETS,
    MIN_PAIRS,
    aggregate,
    bootstrap_ci,
    compare,
    problem_equation,
    problem_size,
    solution_rate,
    wilson_interval,
)

DPI = 120  # storage.write_figure's


def trial(dataset: str, arm: str, seed: int, r2: float | None, student: str = "operon", **extra) -> dict:
    return {"dataset": dataset, "student": student, "arm": arm, "seed": seed, "student_r2_test": r2, **extra}


def write(sweep: Path, trials: list[dict]) -> Path:
    folder = sweep / "trials"
    folder.mkdir(parents=True, exist_ok=True)
    for t in trials:
        (folder / f"{t['dataset']}-{t['student']}-{t['arm']}-{t['seed']}.json").write_text(json.dumps(t))
    return sweep


def paired(gains: dict[str, list[float]], student: str = "operon", base: float = 0.5) -> list[dict]:
    """Baseline and regularized trials whose seed-paired difference is ``gains[dataset][seed]``."""
    return [
        trial(ds, arm, seed, base + 0.01 * seed + (g if arm == "regularized" else 0.0), student)
        for ds, gs in gains.items()
        for seed, g in enumerate(gs)
        for arm in ("baseline", "regularized")
    ]


# ------------------------------------------------------------------------------------- bootstrap


def test_constant_differences_give_a_degenerate_interval_at_the_constant():
    low, high = bootstrap_ci([0.03] * 5)
    assert low == pytest.approx(0.03, abs=1e-12) and high == pytest.approx(0.03, abs=1e-12)
    assert bootstrap_ci([-0.2] * 40) == pytest.approx([-0.2, -0.2], abs=1e-12)


def test_large_normal_sample_gives_mean_plus_minus_1_96_standard_errors():
    x = np.random.default_rng(123).normal(0.3, 1.0, 400)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))  # ≈ 0.098
    low, high = bootstrap_ci(x)
    # Monte Carlo error of a 2.5 % quantile of 10 000 resamples is about 1 % of the half-width; a
    # 90 % or 99 % level (16 %, 31 % off), or a spread not divided by √n, fails this
    assert low == pytest.approx(x.mean() - half, abs=0.04 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.04 * half)


def test_median_interval_has_the_exact_bootstrap_answer_and_ignores_an_outlier():
    """For 0, 1, …, 10 the resampled median is ≤ j exactly when at least 6 of 11 draws are, so
    P(median ≤ j) = P(Binomial(11, (j+1)/11) ≥ 6): 0.0072 at j = 1, 0.051 at 2, 0.949 at 7 and
    0.993 at 8, giving the 95 % interval [2, 8]. An outlier in place of the 10 leaves it there; the
    interval of the mean jumps."""
    x = list(range(11))
    assert bootstrap_ci(x, statistic="median") == [2.0, 8.0]
    outlier = [*x[:-1], 1e6]
    assert bootstrap_ci(outlier, statistic="median") == [2.0, 8.0]
    assert bootstrap_ci(outlier)[1] > 1e5


def test_bootstrap_is_deterministic_by_seed_and_needs_min_pairs():
    x = [0.1, -0.05, 0.3, 0.02, 0.07]
    assert bootstrap_ci(x) == bootstrap_ci(list(x))
    assert bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1) != bootstrap_ci(x, seed=2)
    low, high = bootstrap_ci(x)
    assert min(x) <= low < statistics.fmean(x) < high <= max(x)
    assert bootstrap_ci(x[: MIN_PAIRS - 1]) is None and bootstrap_ci(x[:MIN_PAIRS]) is not None


def test_aggregate_is_deterministic(tmp_path):
    gains = {"a": [0.01, -0.02, 0.05, 0.013, 0.04, -0.007], "b": [0.0, 0.03, 0.01, 0.021, -0.015, 0.002]}
    trials = load_trials(write(tmp_path, paired(gains)))
    assert json.dumps(aggregate(trials)) == json.dumps(aggregate(list(reversed(trials))))


# --------------------------------------------------------------------------- per dataset and over


def test_per_dataset_interval_is_over_the_seed_paired_differences():
    gains = {"alpha": [0.02] * 5, "beta": [0.01, -0.03, 0.04, 0.0, 0.02], "gamma": [0.1, 0.2]}
    trials = paired(gains)
    c = compare(
        [t for t in trials if t["arm"] == "regularized"], [t for t in trials if t["arm"] == "baseline"]
    )
    rows = {r["dataset"]: r for r in c["per_dataset"]}
    assert rows["alpha"]["ci"] == pytest.approx([0.02, 0.02])
    assert rows["alpha"]["outcome"] == "win"  # 5 of 5 seeds better, p = 0.0625
    assert rows["beta"]["ci"] == pytest.approx(bootstrap_ci(gains["beta"]))
    assert rows["gamma"]["ci"] is None  # two seeds: no interval, as no test


def test_over_datasets_each_dataset_counts_once_and_is_tested_by_wilcoxon():
    # six datasets, every one better on average; unequal seed counts
    gains = {f"d{i}": [0.01 * (i + 1)] * (3 + i % 3) for i in range(5)}
    gains["d5"] = [0.5, -0.3, 0.1]  # mean +0.1
    trials = paired(gains)
    reg, base = ([t for t in trials if t["arm"] == arm] for arm in ("regularized", "baseline"))
    c = compare(reg, base)
    means = [statistics.fmean(g) for g in gains.values()]
    assert c["mean_delta_r2"] == pytest.approx(statistics.fmean(means))  # not the mean over pairs
    assert c["mean_delta_r2"] != pytest.approx(statistics.fmean([g for gs in gains.values() for g in gs]))
    assert c["ci"] == pytest.approx(bootstrap_ci(means))  # datasets resampled, d0 … d5 in order
    assert c["median_ci"] == pytest.approx(bootstrap_ci(means, statistic="median"))
    assert c["median_ci"][0] <= c["median_delta_r2"] <= c["median_ci"][1]
    assert c["ci"][0] > 0
    # all six positive: exact two-sided p = 2/2⁶, a win at α = 0.05
    assert c["p_value"] == pytest.approx(2 / 64) and c["outcome"] == "win"
    assert ALPHA_DATASETS == 0.05

    # swap the sign on half the datasets: a tie
    flipped = {ds: [-g for g in gs] if i % 2 else gs for i, (ds, gs) in enumerate(gains.items())}
    trials = paired(flipped)
    c = compare(*([t for t in trials if t["arm"] == arm] for arm in ("regularized", "baseline")))
    assert c["p_value"] > 0.3 and c["outcome"] == "tie"
    # all worse: a loss
    trials = paired({ds: [-g for g in gs] for ds, gs in gains.items()})
    c = compare(*([t for t in trials if t["arm"] == arm] for arm in ("regularized", "baseline")))
    assert c["outcome"] == "loss" and c["ci"][1] < 0


def test_two_datasets_give_a_mean_but_no_interval_or_test():
    trials = paired({"a": [0.01] * 5, "b": [0.03] * 5})
    c = compare(*([t for t in trials if t["arm"] == arm] for arm in ("regularized", "baseline")))
    assert c["mean_delta_r2"] == pytest.approx(0.02)
    assert c["ci"] is None and c["p_value"] is None and c["outcome"] == "tie"


# ----------------------------------------------------------------------------------- the cap rule

FRONT = [
    {"complexity": 5, "student_r2_val": 0.50, "student_r2_test": 0.55},
    {"complexity": 10, "student_r2_val": 0.70, "student_r2_test": 0.60},
    {"complexity": 15, "student_r2_val": 0.65, "student_r2_test": 0.90},  # best on test, not on val
    {"complexity": 30, "student_r2_val": 0.80, "student_r2_test": 0.75},
    {"complexity": 45, "student_r2_val": 0.95, "student_r2_test": 0.20},
]


def test_cap_rule_picks_the_best_on_validation_within_the_cap():
    t = {"front": FRONT}
    assert capped_r2(t, 4) is None  # no member fits
    assert capped_r2(t, 5) == 0.55  # the cap is inclusive
    assert capped_r2(t, 10) == 0.60
    assert capped_r2(t, 20) == 0.60  # complexity 15 is better on test, but selection never sees test
    assert capped_r2(t, 40) == 0.75
    assert capped_r2(t, 1000) == 0.20
    assert CAPS == (10, 20, 40)


def test_cap_rule_without_a_usable_front():
    assert capped_r2({}, 40) is None  # older trials
    assert capped_r2({"front": []}, 40) is None
    assert capped_r2({"front": None}, 40) is None
    nan_val = [{"complexity": 3, "student_r2_val": float("nan"), "student_r2_test": 0.9}, *FRONT]
    assert capped_r2({"front": nan_val}, 5) == 0.55  # an unrankable member is never chosen
    tie = [{"complexity": 4, "student_r2_val": 0.7, "student_r2_test": 0.1}, *FRONT]
    assert capped_r2({"front": tie}, 10) == 0.1  # equal validation R²: the simpler formula
    blown = [{"complexity": 2, "student_r2_val": 0.99, "student_r2_test": None}, *FRONT]
    assert capped_r2({"front": blown}, 10) is None  # the chosen formula blew up on test


def front(shift: float) -> list[dict]:
    """Members at complexity 8, 18, 35 with test R² 0.3, 0.5, 0.7 (+ shift), best on validation last."""
    return [
        {"complexity": c, "student_r2_val": v, "student_r2_test": v + shift}
        for c, v in ((8, 0.3), (18, 0.5), (35, 0.7))
    ]


def test_caps_in_aggregate_and_report(tmp_path):
    trials = []
    for ds in ("a", "b", "c"):
        for seed in range(5):
            trials.append(trial(ds, "baseline", seed, 0.8, front=front(0.0)))
            # regularized: +0.05 at caps 10 and 20, the same at 40, and worse when selected
            better = [
                {**m, "student_r2_test": m["student_r2_test"] + 0.05 * (m["complexity"] < 20)}
                for m in front(0.0)
            ]
            trials.append(trial(ds, "regularized", seed, 0.7, front=better))
    trials.append(trial("c", "direct", 0, 0.5))  # an older trial: no front
    write(tmp_path, trials)
    agg = aggregate(load_trials(tmp_path))
    assert agg["n_fronts"] == 30 and agg["caps"] == [10, 20, 40]
    caps = agg["students"]["operon"]["caps"]
    assert caps["arms"]["regularized"]["10"] == {
        "mean": pytest.approx(0.35),
        "std": pytest.approx(0.0),
        "n": 15,
    }
    assert caps["arms"]["regularized"]["selected"]["mean"] == pytest.approx(0.7)
    assert caps["arms"]["baseline"]["fronts"] == 15 and "direct" not in caps["arms"]
    for cap, delta, outcome in (("10", 0.05, "win"), ("20", 0.05, "win"), ("40", 0.0, "tie")):
        c = caps["comparisons"][cap]["regularized"]["vs_baseline"]
        assert c["mean_delta_r2"] == pytest.approx(delta, abs=1e-12)
        assert c["wins"] == (3 if outcome == "win" else 0) and c["ci"] == pytest.approx(
            [delta, delta], abs=1e-12
        )
    assert caps["comparisons"]["10"]["regularized"]["vs_direct"]["n_datasets"] == 0  # no front: excluded
    selected = agg["students"]["operon"]["vs_baseline"]
    assert selected["mean_delta_r2"] == pytest.approx(-0.1) and selected["losses"] == 3

    text = report.write_report(tmp_path).read_text()
    assert "## Under complexity caps" in text and f"]({FRONTS_PLOT})" in text
    row = re.search(r"\| +operon \| +≤ 10 \| +regularized − baseline \|.*", text)
    assert row and "+0.0500 | [+0.0500, +0.0500]" in row.group(0) and "3 / 0 / 0" in row.group(0)
    assert (tmp_path / FRONTS_PLOT).read_bytes().startswith(b"\x89PNG")
    out = json.loads(json.dumps(report.report_json(tmp_path), allow_nan=False))
    assert list(out["students"]["operon"]["caps"]["comparisons"]) == ["10", "20", "40"]


def test_sweep_without_fronts_says_so(tmp_path):
    write(tmp_path, paired({"a": [0.01, 0.02, 0.03]}))
    agg = aggregate(load_trials(tmp_path))
    assert agg["n_fronts"] == 0 and agg["students"]["operon"]["caps"] is None
    text = report.write_report(tmp_path).read_text()
    assert "No fronts recorded" in text and FRONTS_PLOT not in text
    assert not (tmp_path / FRONTS_PLOT).exists()


# ---------------------------------------------------------------------------------- forest plot


def forest_trials(n_datasets: int, students: tuple[str, ...]) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        trial(f"dataset_{d:02d}", arm, seed, float(rng.normal(0.7, 0.1)), student)
        for student in students
        for d in range(n_datasets)
        for seed in range(5)
        for arm in ("direct", "baseline", "regularized", "augmented", "control")
    ]


@pytest.mark.filterwarnings("error")  # a plot that fails is only a warning otherwise
@pytest.mark.parametrize(
    ("n_datasets", "students"), [(12, ("gplearn", "operon", "tree")), (60, tuple("abcdef"))]
)
def test_forest_plot_is_a_png_of_bounded_size(tmp_path, n_datasets, students):
    import matplotlib.image

    agg = aggregate(forest_trials(n_datasets, students))
    path = tmp_path / PLOTS[2]
    plot_forest(agg, path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    bound = MAX_INCHES * DPI * 1.15  # tight bounding box: labels may stick out a little
    assert 400 < width <= bound and 400 < height <= bound
    if n_datasets == 12:  # the suite's shape: far from the 4638 px of the old bar chart
        assert width < 1600 and height < 1300
    # intervals drawn in each reference's colour (C0 baseline, C7 direct, C3 control)
    for rgb in ((0x1F, 0x77, 0xB4), (0x7F, 0x7F, 0x7F), (0xD6, 0x27, 0x28)):
        close = np.abs(image[..., :3] - np.array(rgb) / 255).max(axis=-1) < 0.02
        assert close.sum() > 100


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", ["a$x^2$b", "a$x_$b", "a$\\foo$b", "back\\slash", "under_score"])
def test_new_plots_draw_any_dataset_name(tmp_path, name):
    trials = [
        trial(name, arm, seed, 0.8 + 0.01 * seed, f"{name} student", front=front(0.01 * seed))
        for arm in ("baseline", "regularized")
        for seed in range(3)
    ]
    plot_forest(aggregate(trials), tmp_path / "forest.png")
    plot_fronts(trials, tmp_path / "fronts.png")
    for png in ("forest.png", "fronts.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------------------------- ground truth


def test_wilson_interval_against_known_values():
    assert wilson_interval(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1
    assert wilson_interval(0, 0) is None


def test_undecided_trials_are_counted_but_left_out_of_the_rate():
    r = solution_rate([{"solution": v} for v in (True, True, False, None, None)])
    assert r == {
        "solved": 2,
        "decided": 3,
        "undecided": 2,
        "n_trials": 5,
        "rate": pytest.approx(2 / 3),
        "ci": pytest.approx(wilson_interval(2, 3)),
    }
    assert solution_rate([{"solution": None}])["rate"] is None


def test_problem_equation_drops_size_noise_and_seed():
    assert problem_equation("feynman-I.6.2-n100-noise0.1") == "feynman-I.6.2"
    assert problem_equation("feynman-II.11.27-noise1e-05-seed3") == "feynman-II.11.27"
    assert problem_equation("feynman-I.6.2") == "feynman-I.6.2"
    assert problem_equation("x-nice-noisy-n12a") == "x-nice-noisy-n12a"


def _solved(rate: dict) -> tuple[int, int]:
    return rate["solved"], rate["decided"]


def test_problem_size_from_the_name():
    assert problem_size("feynman-I.6.2-n100-noise0.1") == {"noise": 0.1, "n": 100}
    assert problem_size("feynman-I.6.2-n100-noise1e-05-seed3") == {"noise": 1e-05, "n": 100}
    assert problem_size("feynman-II.11.27-noise0.01") == {"noise": 0.01, "n": 1000}  # defaults left out
    assert problem_size("feynman-I.6.2") == {"noise": 0.0, "n": 1000}
    assert problem_size("boston") == {"noise": None, "n": None}
    assert problem_size("x-nice-noisy-n12a") == {"noise": None, "n": None}


def gt_trial(dataset: str, arm: str, seed: int, solution, true: float, **extra) -> dict:
    return trial(dataset, arm, seed, true - 0.05, solution=solution, student_r2_test_true=true, **extra)


def test_ground_truth_block_rates_and_comparisons(tmp_path):
    # three problems × 4 seeds: regularized solves 9 of 12 (one undecided), baseline 3 of 12
    datasets = ("feynman-I.6.2-n100-noise0.1", "feynman-I.6.2-n100", "feynman-I.12.1-n100")
    trials = []
    for i, ds in enumerate(datasets):
        for seed in range(4):
            full = {"solution_full_precision": seed == 1}  # baseline only: the regularized do not record it
            trials.append(gt_trial(ds, "baseline", seed, seed == 0, 0.9 + 0.01 * seed, **full))
            solved = None if (i, seed) == (0, 3) else seed < 3
            trials.append(gt_trial(ds, "regularized", seed, solved, 0.92 + 0.01 * seed))
    trials += paired({"real": [0.01] * 4})  # a real data set: no ground truth
    write(tmp_path, trials)
    agg = aggregate(load_trials(tmp_path))
    gt = agg["ground_truth"]
    assert gt["n_trials"] == 24 and gt["datasets"] == sorted(datasets)
    rates = gt["students"]["operon"]["solution_rate"]
    assert rates["baseline"] == {
        "solved": 3,
        "decided": 12,
        "undecided": 0,
        "n_trials": 12,
        "rate": 0.25,
        "ci": pytest.approx(wilson_interval(3, 12)),
    }
    assert (rates["regularized"]["solved"], rates["regularized"]["decided"]) == (9, 11)
    assert rates["regularized"]["undecided"] == 1 and rates["regularized"]["rate"] == pytest.approx(9 / 11)
    by = {(r["noise"], r["n"]): r["arms"] for r in gt["students"]["operon"]["by_problem"]}
    assert list(by) == [(0.0, 100), (0.1, 100)]
    assert by[0.0, 100]["regularized"]["rate"] == pytest.approx(6 / 8)
    assert by[0.1, 100]["regularized"]["rate"] == 1.0 and by[0.1, 100]["baseline"]["rate"] == 0.25
    equations = {r["equation"]: r for r in gt["students"]["operon"]["by_equation"]}
    assert list(equations) == ["feynman-I.12.1", "feynman-I.6.2"]
    assert _solved(equations["feynman-I.6.2"]["arms"]["regularized"]) == (6, 7)  # one undecided
    assert _solved(equations["feynman-I.12.1"]["arms"]["baseline"]) == (1, 4)
    assert _solved(equations["feynman-I.6.2"]["arms_full_precision"]["baseline"]) == (2, 8)
    assert _solved(equations["feynman-I.12.1"]["arms_full_precision"]["regularized"]) == (0, 0)
    c = gt["students"]["operon"]["comparisons"]["regularized"]
    assert c["vs_baseline"]["mean_delta_r2"] == pytest.approx(0.02)  # the noiseless R², not the noisy
    assert c["vs_baseline"]["n_datasets"] == 3 and c["vs_baseline"]["excluded_pairs"] == 0
    assert c["vs_direct"] is None and c["vs_control"] is None

    text = report.write_report(tmp_path).read_text()
    assert "## Ground truth" in text and "Wilson" in text
    assert re.search(r"\| +operon \| +regularized \| +12 \| +9/11 \| +1 \| +82 % \|", text)
    assert "| 100 % (3/3), 1 undecided |" in text and " 75 % (6/8) |" in text
    per_equation = (
        r"\| +operon \| +feynman-I\.6\.2 \| +25 % \(2/8\); full 2/8 \| +86 % \(6/7\), 1 undecided; full 0/0"
    )
    assert re.search(per_equation, text)
    row = re.search(r"## Ground truth[\s\S]*\| +operon \| +regularized − baseline \| +3 \| +12 \|.*", text)
    assert row and "+0.0200 | [+0.0200, +0.0200]" in row.group(0)
    out = json.loads(json.dumps(report.report_json(tmp_path), allow_nan=False))
    assert out["ground_truth"]["students"]["operon"]["solution_rate"]["baseline"]["rate"] == 0.25


def test_full_precision_solutions_are_rated_beside_the_shown_ones(tmp_path):
    # 4 seeds: the shown formula solves 3, its unrounded constants 1; older trials lack the key
    trials = [gt_trial("feynman-I.12.1-n100", "direct", s, s < 3, 0.9, solution_full_precision=s == 0)
              for s in range(4)]  # fmt: skip
    trials += [gt_trial("feynman-I.12.1-n100", "direct", s, True, 0.9) for s in (4, 5)]
    assert solution_rate(trials, "solution_full_precision")["n_trials"] == 4
    write(tmp_path, trials)
    block = aggregate(load_trials(tmp_path))["ground_truth"]["students"]["operon"]
    assert (block["solution_rate"]["direct"]["solved"], block["solution_rate"]["direct"]["decided"]) == (5, 6)
    full = block["solution_rate_full_precision"]["direct"]
    assert (full["solved"], full["decided"], full["rate"]) == (1, 4, 0.25)
    text = report.write_report(tmp_path).read_text()
    assert re.search(r"\| +operon \| +direct \| +6 \| +5/6 \| .*\| 25 % \(1/4\) \[", text)


def test_real_data_sweep_has_no_ground_truth(tmp_path):
    write(tmp_path, paired({"a": [0.01, 0.02, 0.03]}))
    assert aggregate(load_trials(tmp_path))["ground_truth"] is None
    assert "## Ground truth" not in report.write_report(tmp_path).read_text()
