"""The sweep report on synthetic trial files with known numbers: no training.

The main sweep has two datasets and five seeds for student ``operon``:

- ``alpha``: regularized − baseline = +0.01 … +0.05 (every seed better): Wilcoxon p = 2/2⁵ = 0.0625
  < α = 0.1, a win; direct is 0.09 … 0.05 above regularized (a significant loss); control lacks a
  result on seed 4 (its formula blew up), leaving 4 pairs: p = 0.125, a tie.
- ``beta``: regularized − baseline = +0.02, −0.01, +0.03, −0.02, +0.005 (mixed): a tie; direct
  equals regularized (all differences zero): a tie; control exists for seeds 0 and 1 only (2 pairs):
  a tie.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from jacdistill import report
from jacdistill.options import JacdistillError
from jacdistill.report.loading import load_trials
from jacdistill.report.plots import PLOTS
from jacdistill.report.stats import aggregate, per_dataset
from jacdistill.trials import ARMS

SEEDS = range(5)
BASE = {"alpha": [0.80, 0.81, 0.82, 0.83, 0.84], "beta": [0.50, 0.52, 0.48, 0.51, 0.49]}
GAIN = {"alpha": [0.01, 0.02, 0.03, 0.04, 0.05], "beta": [0.02, -0.01, 0.03, -0.02, 0.005]}
REG = {ds: [b + g for b, g in zip(BASE[ds], GAIN[ds])] for ds in BASE}
DIRECT = {"alpha": [0.90, 0.91, 0.92, 0.93, 0.94], "beta": list(REG["beta"])}
CONTROL = {"alpha": [0.79, 0.80, 0.81, 0.82, None], "beta": [0.49, 0.50]}

# by hand
REL_ALPHA = (statistics.fmean(REG["alpha"]) - 0.82) / 0.82  # 0.03 / 0.82
REL_BETA = (statistics.fmean(REG["beta"]) - 0.50) / 0.50  # 0.005 / 0.5 = 0.01
MEAN_REL_GAIN = (0.03 / 0.82 + 0.01) / 2  # 0.0232927…
MEDIAN_DELTA = (0.03 + 0.005) / 2  # 0.0175


def trial(dataset, arm, seed, r2, student="operon", **extra):
    direct = arm == "direct"
    lam = None if direct else 0.0 if arm in ("baseline", "control") else 10.0 ** -(seed % 3 + 2)
    t = {
        "dataset": dataset,
        "student": student,
        "arm": arm,
        "seed": seed,
        "lam": lam,
        "teacher_r2_test": None if direct else 0.95,
        "student_r2_test": r2,
        "fidelity_r2_test": None if direct else (None if r2 is None else r2 + 0.05),
        "complexity": 20 + seed,
        "seconds": 1.5,
        "student_r2_val": r2,
        "teacher_r2_val": 0.9,
        "formula": "y = x0",
    }
    if arm in ("regularized", "augmented"):
        t["tuning"] = {
            "trials": [
                {"lam": 0.0, "teacher_r2_val": 0.9, "student_r2_val": 0.70, "seconds": 1.0},
                {"lam": 1e-3, "teacher_r2_val": 0.9, "student_r2_val": 0.75 + 0.01 * seed, "seconds": 1.0},
                {"lam": 1e-1, "teacher_r2_val": 0.8, "student_r2_val": None, "seconds": 1.0},
            ],
            "compute": {"teacher_trainings": 3},
        }
    if arm == "control":
        t["candidates"] = 5
    t.update(extra)
    return t


def write(sweep: Path, trials: list[dict]) -> Path:
    folder = sweep / "trials"
    folder.mkdir(parents=True, exist_ok=True)
    for t in trials:
        name = f"{t['dataset']}-{t['student']}-{t['arm']}-{t['seed']}.json"
        (folder / name).write_text(json.dumps(t))
    return sweep


def main_trials(arms=("direct", "baseline", "regularized", "control")) -> list[dict]:
    table = {"direct": DIRECT, "baseline": BASE, "regularized": REG, "control": CONTROL}
    return [
        trial(ds, arm, seed, r2)
        for arm in arms
        for ds in ("alpha", "beta")
        for seed, r2 in enumerate(table[arm][ds])
    ]


@pytest.fixture
def sweep(tmp_path) -> Path:
    return write(tmp_path / "sweep", main_trials())


# ---------------------------------------------------------------------------------------- loading


def test_load_trials_sorted_and_ignores_other_files(sweep):
    folder = sweep / "trials"
    (folder / ".alpha-operon-baseline-0.json.x1.tmp").write_text("{half")
    (folder / ".hidden.json").write_text(json.dumps(trial("zeta", "baseline", 0, 0.1)))
    (folder / "notes.txt").write_text("not a trial")
    (folder / "sub").mkdir()
    (folder / "sub" / "x.json").write_text(json.dumps(trial("zeta", "baseline", 1, 0.1)))
    (sweep / "stray.json").write_text(json.dumps(trial("zeta", "baseline", 2, 0.1)))
    trials = load_trials(sweep)
    assert len(trials) == 10 + 10 + 10 + 7
    keys = [(t["dataset"], ARMS.index(t["arm"]), t["seed"]) for t in trials]
    assert keys == sorted(keys)
    assert {t["dataset"] for t in trials} == {"alpha", "beta"}
    assert load_trials(str(sweep)) == trials


def test_missing_or_empty_sweep_is_a_one_line_error(tmp_path):
    with pytest.raises(JacdistillError, match="does not exist") as exc:
        load_trials(tmp_path / "nope")
    assert "\n" not in str(exc.value)
    with pytest.raises(JacdistillError, match="no trials/ folder"):
        load_trials(tmp_path)
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / ".a.json.tmp").write_text("{}")
    with pytest.raises(JacdistillError, match="holds no trial"):
        load_trials(tmp_path)
    with pytest.raises(JacdistillError, match="holds no trial"):
        report.write_report(tmp_path)
    with pytest.raises(JacdistillError, match="holds no trial"):
        report.report_json(tmp_path)


def test_malformed_and_duplicate_trials_are_errors(tmp_path):
    write(tmp_path, [trial("alpha", "baseline", 0, 0.5)])
    (tmp_path / "trials" / "bad.json").write_text("{not json")
    with pytest.raises(JacdistillError, match="bad.json"):
        load_trials(tmp_path)
    (tmp_path / "trials" / "bad.json").write_text(
        json.dumps({"dataset": "alpha", "arm": "baseline", "seed": 0})
    )
    with pytest.raises(JacdistillError, match="lacks the key 'student'"):
        load_trials(tmp_path)
    (tmp_path / "trials" / "bad.json").write_text(json.dumps(trial("alpha", "baseline", 0, 0.6)))
    with pytest.raises(JacdistillError, match="same trial"):
        load_trials(tmp_path)


# ------------------------------------------------------------------------------------- aggregates


def test_aggregate_against_hand_computed_values(sweep):
    agg = aggregate(load_trials(sweep))
    assert agg["alpha"] == 0.1
    assert agg["n_trials"] == 10 + 10 + 10 + 7
    assert agg["n_failures"] == 1
    assert agg["datasets"] == ["alpha", "beta"] and agg["seeds"] == [0, 1, 2, 3, 4]
    assert agg["arms"] == ["direct", "baseline", "regularized", "control"]
    s = agg["students"]["operon"]
    assert s["failures"] == {"direct": 0, "baseline": 0, "regularized": 0, "control": 1}

    assert s["mean_relative_gain"] == pytest.approx(MEAN_REL_GAIN)
    assert s["mean_relative_gain"] == pytest.approx((REL_ALPHA + REL_BETA) / 2)
    assert s["median_delta_r2"] == pytest.approx(MEDIAN_DELTA)
    assert (s["wins"], s["ties"], s["losses"]) == (1, 1, 0)
    rows = {r["dataset"]: r for r in s["vs_baseline"]["per_dataset"]}
    assert rows["alpha"]["p_value"] == pytest.approx(0.0625) and rows["alpha"]["outcome"] == "win"
    assert rows["alpha"]["relative_gain"] == pytest.approx(0.03 / 0.82)
    assert rows["alpha"]["treatment_r2"] == pytest.approx(0.85)
    assert rows["alpha"]["reference_r2"] == pytest.approx(0.82)
    assert rows["beta"]["p_value"] > 0.1 and rows["beta"]["outcome"] == "tie"
    assert rows["beta"]["mean_delta_r2"] == pytest.approx(0.005)
    assert s["vs_baseline"]["n_pairs"] == 10 and s["vs_baseline"]["excluded_pairs"] == 0

    # vs direct: alpha a significant loss (−0.09 … −0.05), beta all-zero differences: a tie
    assert s["median_delta_r2_vs_direct"] == pytest.approx((-0.07 + 0.0) / 2)
    assert {k: s["vs_direct"][k] for k in ("wins", "ties", "losses")} == {"wins": 0, "ties": 1, "losses": 1}
    direct_rows = {r["dataset"]: r for r in s["vs_direct"]["per_dataset"]}
    assert direct_rows["alpha"]["p_value"] == pytest.approx(0.0625)
    assert direct_rows["beta"]["p_value"] is None

    # vs control: alpha 4 pairs (seed 4 failed) all +0.02 … +0.05, p = 0.125 > α; beta 2 pairs
    assert s["vs_control"]["excluded_pairs"] == 1 and s["vs_control"]["n_pairs"] == 6
    control_rows = {r["dataset"]: r for r in s["vs_control"]["per_dataset"]}
    assert control_rows["alpha"]["seeds"] == [0, 1, 2, 3]
    assert control_rows["alpha"]["p_value"] == pytest.approx(0.125)
    assert control_rows["alpha"]["mean_delta_r2"] == pytest.approx(
        statistics.fmean([r - c for r, c in zip(REG["alpha"][:4], CONTROL["alpha"][:4])])
    )
    assert control_rows["beta"]["n"] == 2 and control_rows["beta"]["p_value"] is None
    assert {k: s["vs_control"][k] for k in ("wins", "ties", "losses")} == {"wins": 0, "ties": 2, "losses": 0}
    expected = statistics.median(
        [
            statistics.fmean(REG["alpha"][:4]) - statistics.fmean(CONTROL["alpha"][:4]),
            statistics.fmean(REG["beta"][:2]) - statistics.fmean(CONTROL["beta"]),
        ]
    )
    assert s["median_delta_r2_vs_control"] == pytest.approx(expected)
    assert s["augmented"] is None
    # fidelity is student R² + 0.05 in every arm, the teacher 0.95: the fidelity change is the R² change
    assert s["median_delta_fidelity_r2"] == pytest.approx(MEDIAN_DELTA)
    assert s["median_delta_teacher_r2"] == pytest.approx(0.0)


def test_teacher_and_fidelity_changes_are_seed_paired_medians_over_datasets(tmp_path):
    teacher = {
        ("a", "baseline"): [0.90, 0.92, 0.94],
        ("a", "regularized"): [0.89, 0.92, 0.96],
        ("b", "baseline"): [0.80, 0.80, 0.80],
        ("b", "regularized"): [0.70, 0.75, None],
        ("c", "baseline"): [0.5, 0.5, 0.5],
        ("c", "regularized"): [0.6, 0.6, 0.6],
    }
    trials = [
        trial(ds, arm, seed, 0.5, teacher_r2_test=value, fidelity_r2_test=0.1 * seed + (arm == "regularized"))
        for (ds, arm), values in teacher.items()
        for seed, value in enumerate(values)
    ]
    s = aggregate(load_trials(write(tmp_path / "s", trials)))["students"]["operon"]
    # per dataset: a (−0.01 + 0 + 0.02)/3, b (−0.10 − 0.05)/2 (seed 2 has no teacher R²), c +0.1
    assert s["median_delta_teacher_r2"] == pytest.approx(0.01 / 3)
    assert s["median_delta_fidelity_r2"] == pytest.approx(1.0)


def test_failed_trial_is_counted_and_its_pair_excluded(tmp_path):
    trials = main_trials(("baseline", "regularized"))
    broken = next(
        t for t in trials if t["arm"] == "regularized" and t["dataset"] == "alpha" and t["seed"] == 4
    )
    broken["student_r2_test"] = None
    broken["fidelity_r2_test"] = None
    write(tmp_path, trials)
    s = aggregate(load_trials(tmp_path))["students"]["operon"]
    assert s["failures"] == {"baseline": 0, "regularized": 1}
    assert s["vs_baseline"]["excluded_pairs"] == 1
    alpha = s["vs_baseline"]["per_dataset"][0]
    assert alpha["dataset"] == "alpha" and alpha["seeds"] == [0, 1, 2, 3]
    # four seeds, all better: p = 2/2⁴ = 0.125, not significant at α = 0.1
    assert alpha["p_value"] == pytest.approx(0.125) and alpha["outcome"] == "tie"
    rel_alpha = (statistics.fmean(REG["alpha"][:4]) - statistics.fmean(BASE["alpha"][:4])) / statistics.fmean(
        BASE["alpha"][:4]
    )
    assert alpha["relative_gain"] == pytest.approx(rel_alpha)
    assert s["mean_relative_gain"] == pytest.approx((rel_alpha + 0.01) / 2)
    assert (s["wins"], s["ties"], s["losses"]) == (0, 2, 0)
    rows = per_dataset(load_trials(tmp_path))
    reg = rows[0]["arms"]["regularized"]
    assert reg["failures"] == 1 and reg["n"] == 5 and reg["student_r2_test"]["n"] == 4
    assert reg["student_r2_test"]["mean"] == pytest.approx(statistics.fmean(REG["alpha"][:4]))


def test_nan_result_is_a_failure_and_json_has_no_nan(tmp_path):
    trials = main_trials(("baseline", "regularized"))
    trials[0]["student_r2_test"] = float("nan")  # json.dumps writes NaN, json.loads reads it
    write(tmp_path, trials)
    agg = aggregate(load_trials(tmp_path))
    assert agg["n_failures"] == 1
    text = json.dumps(report.report_json(tmp_path), allow_nan=False)  # strict JSON
    assert "NaN" not in text


def test_missing_arms_give_null_keys(tmp_path):
    write(tmp_path, main_trials(("baseline", "regularized")))
    out = report.report_json(tmp_path)
    s = out["students"]["operon"]
    for key in (
        "mean_relative_gain",
        "median_delta_r2",
        "wins",
        "ties",
        "losses",
        "median_delta_r2_vs_direct",
        "median_delta_r2_vs_control",
    ):
        assert key in s
    assert s["median_delta_r2_vs_direct"] is None and s["median_delta_r2_vs_control"] is None
    assert s["vs_direct"] is None and s["vs_control"] is None and s["augmented"] is None
    assert s["median_delta_r2"] == pytest.approx(MEDIAN_DELTA)
    assert out["settings"] is None and out["alpha"] == 0.1


def test_no_regularized_arm_gives_null_headline(tmp_path):
    write(tmp_path, main_trials(("direct", "baseline")))
    s = aggregate(load_trials(tmp_path))["students"]["operon"]
    assert all(
        s[k] is None
        for k in (
            "mean_relative_gain",
            "median_delta_r2",
            "wins",
            "ties",
            "losses",
            "median_delta_r2_vs_direct",
            "median_delta_r2_vs_control",
        )
    )
    path = report.write_report(tmp_path)
    text = path.read_text()
    assert "no regularized/baseline pairs" in text
    for name in PLOTS:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_augmented_block(tmp_path):
    trials = main_trials()
    trials += [trial(ds, "augmented", seed, b + 0.1) for ds in BASE for seed, b in enumerate(BASE[ds])]
    write(tmp_path, trials)
    s = aggregate(load_trials(tmp_path))["students"]["operon"]
    aug = s["augmented"]
    assert aug["treatment"] == "augmented"
    assert (aug["wins"], aug["ties"], aug["losses"]) == (2, 0, 0)
    assert aug["median_delta_r2"] == pytest.approx(0.1)
    assert aug["mean_relative_gain"] == pytest.approx((0.1 / 0.82 + 0.1 / 0.5) / 2)
    assert aug["vs_direct"]["per_dataset"][0]["mean_delta_r2"] == pytest.approx(0.92 - 0.92)
    assert aug["median_delta_r2_vs_control"] is not None
    assert "augmented" not in (aug["vs_direct"], aug["vs_control"])
    assert s["mean_relative_gain"] == pytest.approx(MEAN_REL_GAIN)  # regularized unchanged
    text = report.write_report(tmp_path).read_text()
    assert "## Augmented vs baseline, per student" in text
    assert "augmented distillation beat the λ=0 baseline on 2 of 2 datasets" in text


def test_several_students_are_separate(tmp_path):
    trials = main_trials(("baseline", "regularized"))
    trials += [
        trial(ds, arm, seed, 0.5 - (0.01 * seed if arm == "regularized" else 0), student="tree")
        for ds in BASE
        for arm in ("baseline", "regularized")
        for seed in SEEDS
    ]
    write(tmp_path, trials)
    agg = aggregate(load_trials(tmp_path))
    assert list(agg["students"]) == ["operon", "tree"]
    assert agg["students"]["operon"]["mean_relative_gain"] == pytest.approx(MEAN_REL_GAIN)
    tree = agg["students"]["tree"]
    # seed 0 is a zero difference (dropped), seeds 1–4 all worse: 4 nonzero pairs, p = 0.125
    assert (tree["wins"], tree["ties"], tree["losses"]) == (0, 2, 0)
    assert tree["median_delta_r2"] == pytest.approx(-0.02)
    assert tree["mean_relative_gain"] == pytest.approx(-0.02 / 0.5)
    assert report.write_report(tmp_path).exists()


def test_per_dataset_mean_std(sweep):
    rows = per_dataset(load_trials(sweep))
    assert [(r["dataset"], r["student"]) for r in rows] == [("alpha", "operon"), ("beta", "operon")]
    alpha = rows[0]["arms"]
    assert list(alpha) == ["direct", "baseline", "regularized", "control"]
    base = alpha["baseline"]
    assert base["student_r2_test"]["mean"] == pytest.approx(0.82)
    assert base["student_r2_test"]["std"] == pytest.approx(statistics.stdev(BASE["alpha"]))
    assert base["teacher_r2_test"] == {"mean": pytest.approx(0.95), "std": pytest.approx(0.0), "n": 5}
    assert base["complexity"]["mean"] == pytest.approx(22.0)
    assert base["lam"] == {"median": 0.0, "min": 0.0, "max": 0.0}
    assert alpha["direct"]["lam"] is None and alpha["direct"]["teacher_r2_test"]["mean"] is None
    assert alpha["direct"]["fidelity_r2_test"]["n"] == 0
    reg = alpha["regularized"]
    assert reg["lam"] == {"median": 1e-3, "min": 1e-4, "max": 1e-2}  # seeds 0–4 → 1e-2,1e-3,1e-4,1e-2,1e-3
    assert reg["fidelity_r2_test"]["mean"] == pytest.approx(0.85 + 0.05)
    control = alpha["control"]
    assert control["failures"] == 1 and control["student_r2_test"]["n"] == 4
    assert control["candidates"]["mean"] == 5
    beta_control = rows[1]["arms"]["control"]
    assert beta_control["n"] == 2 and beta_control["seeds"] == [0, 1]


# ------------------------------------------------------------------------------------ report files


def test_write_report_markdown_and_plots(sweep):
    (sweep / "sweep.json").write_text(
        json.dumps({"datasets": ["alpha", "beta"], "seeds": 5, "student": "operon", "tuner": "constrained"})
    )
    path = report.write_report(sweep)
    assert path == sweep / "report.md"
    text = path.read_text()
    # header
    assert "# Sweep report: sweep" in text
    assert "37 trials" in text and "1 failed" in text
    assert '"tuner": "constrained"' in text
    # headline numbers, as the table shows them
    assert f"{100 * MEAN_REL_GAIN:+.2f} %" == "+2.33 %"
    assert "+2.33 %" in text
    assert "+0.0175" in text
    assert "1 / 1 / 0" in text  # regularized vs baseline
    assert "-0.0350" in text and "0 / 1 / 1" in text  # vs direct
    assert "0 / 2 / 0" in text  # vs control
    assert "0.0625" in text and "α = 0.1" in text
    # the plain statement
    assert "regularized distillation beat the λ=0 baseline on 1 of 2 datasets" in text
    assert "It never significantly beat direct fitting or the λ=0 control on any dataset." in text
    assert "the best on validation of 5 λ=0 teachers" in text
    assert "Failed trials (student test R² null, left out pairwise): control 1." in text
    # intervals: alpha's seed-paired gains 0.01 … 0.05 lie within [0.01, 0.05]; two datasets give no
    # interval or test over datasets
    assert "## Over datasets: mean ΔR² with its interval" in text and "95 % CI" in text
    alpha_ci = aggregate(load_trials(sweep))["students"]["operon"]["vs_baseline"]["per_dataset"][0]["ci"]
    assert 0.01 <= alpha_ci[0] < 0.03 < alpha_ci[1] <= 0.05
    assert f"[+{alpha_ci[0]:.4f}, +{alpha_ci[1]:.4f}]" in text
    assert "mean ΔR² +0.0175 (95 % CI n/a, Wilcoxon over datasets p = n/a)" in text
    assert "No fronts recorded" in text
    # per-dataset table
    assert "0.8200 ± 0.0158" in text
    assert "4 (1 failed)" in text or "5 (1 failed)" in text
    # plots referenced and valid
    for name in PLOTS:
        assert f"]({name})" in text
        data = (sweep / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        import matplotlib.image

        image = matplotlib.image.imread(sweep / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
    # atomic writes leave no temp files; rerunning overwrites
    assert not [p for p in sweep.iterdir() if p.name.startswith(".")]
    assert report.write_report(sweep) == path


def test_statement_when_regularized_wins_everywhere(tmp_path):
    trials = [
        trial(ds, arm, seed, b + (0.1 if arm == "regularized" else 0.0))
        for ds in BASE
        for arm in ("direct", "baseline", "regularized")
        for seed, b in enumerate(BASE[ds])
    ]
    write(tmp_path, trials)
    text = report.write_report(tmp_path).read_text()
    assert "beat the λ=0 baseline on 2 of 2 datasets" in text
    assert "won on 2 of 2 datasets" in text
    assert "never significantly" not in text


def test_unreadable_sweep_json_is_noted_not_fatal(sweep):
    (sweep / "sweep.json").write_text("{oops")
    text = report.write_report(sweep).read_text()
    assert "sweep.json could not be read" in text
    assert report.report_json(sweep)["settings"] is None


def test_report_json_matches_aggregate(sweep):
    out = report.report_json(sweep)
    agg = aggregate(load_trials(sweep))
    s, t = out["students"]["operon"], agg["students"]["operon"]
    for key in (
        "mean_relative_gain",
        "median_delta_r2",
        "wins",
        "ties",
        "losses",
        "median_delta_r2_vs_direct",
        "median_delta_r2_vs_control",
    ):
        assert s[key] == pytest.approx(t[key])
    assert out["sweep_dir"] == str(sweep)
    json.dumps(out, allow_nan=False)


def test_zero_baseline_mean_is_left_out_of_relative_gain(tmp_path):
    trials = [trial("alpha", "baseline", s, v) for s, v in enumerate([-0.02, -0.01, 0.0, 0.01, 0.02])]
    trials += [trial("alpha", "regularized", s, 0.1) for s in SEEDS]
    trials += [
        trial("beta", arm, s, 0.5 + (0.05 if arm == "regularized" else 0))
        for arm in ("baseline", "regularized")
        for s in SEEDS
    ]
    write(tmp_path, trials)
    s = aggregate(load_trials(tmp_path))["students"]["operon"]
    rows = {r["dataset"]: r for r in s["vs_baseline"]["per_dataset"]}
    assert rows["alpha"]["relative_gain"] is None
    assert s["mean_relative_gain"] == pytest.approx(0.1)
    assert not math.isnan(s["median_delta_r2"])
