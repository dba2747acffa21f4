"""The report of a ``jacdistill sweep``: paired statistics over seeds, tables, plots.

A sweep directory holds one JSON file per finished trial under ``trials/`` (and, optionally, the
sweep's settings in ``sweep.json``). Each trial is one (dataset, student, arm, seed); the arms are

- ``direct``: the student fitted to the data itself, no teacher;
- ``baseline``: the student distilled from a λ = 0 teacher;
- ``regularized``: the student distilled from a Jacobian-regularized teacher (λ tuned);
- ``augmented``: as ``regularized``, with augmented distillation data;
- ``control``: the best on validation of ``candidates`` λ = 0 teachers (as many as the
  regularized arm's tuner trained).

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

import datetime as dt
import json
import math
import statistics
import warnings
from pathlib import Path

from jacdistill import storage
from jacdistill.options import JacdistillError
from jacdistill.sweep import ARMS

ALPHA = 0.1
MIN_PAIRS = 3
ZERO = 1e-12          # |ΔR²| at or below this is a zero difference (dropped by the Wilcoxon test)
TREATMENTS = ("regularized", "augmented")
REFERENCES = ("baseline", "direct", "control")
REQUIRED_KEYS = ("dataset", "student", "arm", "seed")
PLOTS = ("student_r2_vs_lambda.png", "fidelity_vs_accuracy.png", "per_dataset.png")
TEST = ("scipy.stats.wilcoxon, two-sided, zero_method='wilcox' (zero differences dropped), "
        "method='auto', paired over seeds per dataset")
ARM_COLORS = {"direct": "C7", "baseline": "C0", "regularized": "C1", "augmented": "C2", "control": "C3"}
REFERENCE_WORDS = {"baseline": "the λ=0 baseline", "direct": "direct fitting (no teacher)",
                   "control": "the λ=0 control"}
R2_FLOOR = -1.0       # plots clip R² below this, so one blown-up formula does not flatten the rest


# ----------------------------------------------------------------------------------------- loading

def load_trials(sweep_dir: str | Path) -> list[dict]:
    """Every trial of a sweep (``SWEEP_DIR/trials/*.json``; hidden and other files are ignored),
    sorted by dataset, student, arm (in ``ARMS`` order) and seed.

    A missing folder, a folder without trials, an unreadable or malformed trial file, or two files
    for the same (dataset, student, arm, seed) is a :class:`JacdistillError`.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise JacdistillError(f"sweep directory {root} does not exist")
    folder = root / "trials"
    if not folder.is_dir():
        raise JacdistillError(f"{root} has no trials/ folder: not a sweep directory, or no trial has finished")
    trials, seen = [], {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            trial = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise JacdistillError(f"cannot read trial file {path}: {exc}") from None
        if not isinstance(trial, dict):
            raise JacdistillError(f"trial file {path} does not hold a JSON object")
        missing = [key for key in REQUIRED_KEYS if key not in trial]
        if missing:
            raise JacdistillError(f"trial file {path} lacks the key '{missing[0]}'")
        if not all(isinstance(trial[key], str) for key in ("dataset", "student", "arm")) or \
                not isinstance(trial["seed"], int) or isinstance(trial["seed"], bool):
            raise JacdistillError(f"trial file {path}: dataset, student and arm must be text, seed an integer")
        key = tuple(trial[k] for k in REQUIRED_KEYS)
        if key in seen:
            raise JacdistillError(f"trial files {seen[key].name} and {path.name} are the same trial "
                                  f"(dataset {key[0]}, student {key[1]}, arm {key[2]}, seed {key[3]})")
        seen[key] = path
        trials.append(trial)
    if not trials:
        raise JacdistillError(f"{folder} holds no trial (*.json) yet")
    return sorted(trials, key=_trial_order)


def _trial_order(trial: dict):
    return (trial["dataset"], trial["student"], _arm_rank(trial["arm"]), trial["arm"], trial["seed"])


def _arm_rank(arm: str) -> int:
    return ARMS.index(arm) if arm in ARMS else len(ARMS)


def _arms(trials: list[dict]) -> list[str]:
    return sorted({t["arm"] for t in trials}, key=lambda arm: (_arm_rank(arm), arm))


def _value(x) -> float | None:
    """A finite number as float; None (missing, null, NaN, ±inf, not a number) otherwise."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _failed(trial: dict) -> bool:
    return _value(trial.get("student_r2_test")) is None


def read_settings(sweep_dir: str | Path) -> tuple[dict | None, str | None]:
    """``sweep.json`` (optional): (its content, None), (None, None) if absent, (None, why) if unreadable."""
    path = Path(sweep_dir) / "sweep.json"
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text()), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"sweep.json could not be read: {exc}"


# ------------------------------------------------------------------------------------- statistics

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
        ya, yb = _value(a[dataset, seed].get("student_r2_test")), _value(b[dataset, seed].get("student_r2_test"))
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
        outcome = "win" if significant and mean_delta > 0 else "loss" if significant and mean_delta < 0 else "tie"
        rows.append({"dataset": dataset, "n": len(seeds), "seeds": seeds, "treatment_r2": mean_a,
                     "reference_r2": mean_b, "mean_delta_r2": mean_delta,
                     "relative_gain": (mean_a - mean_b) / abs(mean_b) if mean_b != 0 else None,
                     "p_value": p, "outcome": outcome})
    gains = [row["relative_gain"] for row in rows if row["relative_gain"] is not None]
    return {
        "mean_relative_gain": statistics.fmean(gains) if gains else None,
        "median_delta_r2": statistics.median(r["mean_delta_r2"] for r in rows) if rows else None,
        "wins": sum(r["outcome"] == "win" for r in rows),
        "ties": sum(r["outcome"] == "tie" for r in rows),
        "losses": sum(r["outcome"] == "loss" for r in rows),
        "n_datasets": len(rows), "n_pairs": sum(r["n"] for r in rows), "excluded_pairs": excluded,
        "per_dataset": rows,
    }


def median_paired_delta(treatment: list[dict], reference: list[dict], key: str) -> float | None:
    """Median over datasets of the mean seed-paired difference in ``key`` (e.g. the teacher's test
    R²), over the (dataset, seed) pairs with a finite value in both; None with none."""
    a = {(t["dataset"], t["seed"]): _value(t.get(key)) for t in treatment}
    b = {(t["dataset"], t["seed"]): _value(t.get(key)) for t in reference}
    by_dataset: dict[str, list[float]] = {}
    for pair in set(a) & set(b):
        if a[pair] is not None and b[pair] is not None:
            by_dataset.setdefault(pair[0], []).append(a[pair] - b[pair])
    return statistics.median(statistics.fmean(d) for d in by_dataset.values()) if by_dataset else None


def _treatment_block(by_arm: dict[str, list[dict]], arm: str) -> dict:
    """One treatment arm against baseline (flat headline keys), direct and control; a key or
    block is None where an arm it needs is absent."""
    blocks = {ref: compare(by_arm[arm], by_arm[ref]) if arm in by_arm and ref in by_arm else None
              for ref in REFERENCES}
    get = lambda ref, key: blocks[ref][key] if blocks[ref] is not None else None
    return {
        "treatment": arm,
        "mean_relative_gain": get("baseline", "mean_relative_gain"),
        "median_delta_r2": get("baseline", "median_delta_r2"),
        "wins": get("baseline", "wins"), "ties": get("baseline", "ties"), "losses": get("baseline", "losses"),
        "median_delta_r2_vs_direct": get("direct", "median_delta_r2"),
        "median_delta_r2_vs_control": get("control", "median_delta_r2"),
        **{f"median_delta_{key}": median_paired_delta(by_arm[arm], by_arm["baseline"], f"{key}_test")
           if arm in by_arm and "baseline" in by_arm else None for key in ("teacher_r2", "fidelity_r2")},
        **{f"vs_{ref}": blocks[ref] for ref in REFERENCES},
    }


def aggregate(trials: list[dict]) -> dict:
    """Per student: "regularized" against "baseline" (the flat keys ``mean_relative_gain``,
    ``median_delta_r2``, ``wins``, ``ties``, ``losses``, plus ``median_delta_r2_vs_direct`` and
    ``median_delta_r2_vs_control``; ``median_delta_teacher_r2`` and ``median_delta_fidelity_r2``:
    did the teacher keep its accuracy, did the student follow it more closely), the full comparison
    blocks ``vs_baseline``, ``vs_direct`` and ``vs_control``, and the same for "augmented" under ``augmented`` (None without that arm).
    Trials whose student test R² is null are failures: counted per arm, excluded pairwise."""
    students = {}
    for student in sorted({t["student"] for t in trials}):
        mine = [t for t in trials if t["student"] == student]
        by_arm = {arm: [t for t in mine if t["arm"] == arm] for arm in _arms(mine)}
        block = _treatment_block(by_arm, "regularized")
        block.pop("treatment")
        students[student] = {
            "arms": list(by_arm), "datasets": sorted({t["dataset"] for t in mine}),
            "n_trials": len(mine),
            "failures": {arm: sum(_failed(t) for t in ts) for arm, ts in by_arm.items()},
            **block,
            "augmented": _treatment_block(by_arm, "augmented") if "augmented" in by_arm else None,
        }
    return {
        "alpha": ALPHA, "test": TEST, "min_pairs": MIN_PAIRS,
        "n_trials": len(trials), "n_failures": sum(_failed(t) for t in trials),
        "datasets": sorted({t["dataset"] for t in trials}), "arms": _arms(trials),
        "seeds": sorted({t["seed"] for t in trials}), "students": students,
    }


def _stats(values) -> dict:
    """Mean and sample standard deviation (ddof 1; None below 2 values) of the finite values."""
    finite = [v for v in (_value(x) for x in values) if v is not None]
    return {"mean": statistics.fmean(finite) if finite else None,
            "std": statistics.stdev(finite) if len(finite) > 1 else None, "n": len(finite)}


def per_dataset(trials: list[dict]) -> list[dict]:
    """One row per (dataset, student): per arm the seeds, the failures, mean ± std over seeds of
    teacher, student and fidelity test R², complexity and seconds, and the chosen λ as median,
    min and max (λ spans decades, so not mean ± std)."""
    rows = []
    for dataset, student in sorted({(t["dataset"], t["student"]) for t in trials}):
        mine = [t for t in trials if t["dataset"] == dataset and t["student"] == student]
        arms = {}
        for arm in _arms(mine):
            ts = [t for t in mine if t["arm"] == arm]
            lams = [v for v in (_value(t.get("lam")) for t in ts) if v is not None]
            arms[arm] = {
                "n": len(ts), "seeds": [t["seed"] for t in ts], "failures": sum(_failed(t) for t in ts),
                **{key: _stats(t.get(key) for t in ts) for key in (
                    "teacher_r2_test", "student_r2_test", "fidelity_r2_test", "complexity", "seconds")},
                "lam": {"median": statistics.median(lams), "min": min(lams), "max": max(lams)} if lams else None,
            }
            if arm == "control":
                arms[arm]["candidates"] = _stats(t.get("candidates") for t in ts)
        rows.append({"dataset": dataset, "student": student, "arms": arms})
    return rows


def report_json(sweep_dir: str | Path) -> dict:
    """What ``jacdistill report SWEEP_DIR --json`` prints: the aggregates and ``sweep.json``
    (as ``settings``), strict-JSON ready (NaN and ±inf as None)."""
    trials = load_trials(sweep_dir)
    settings, _ = read_settings(sweep_dir)
    return json.loads(storage.to_json({"sweep_dir": str(sweep_dir), "settings": settings, **aggregate(trials)}))


# --------------------------------------------------------------------------------------- Markdown

def _num(x, fmt: str = ".4f") -> str:
    """``x`` formatted, "n/a" for None; a value that rounds to zero loses its minus sign."""
    if x is None:
        return "n/a"
    text = format(x, fmt)
    if text.startswith("-") and not text.strip("-+0.%"):
        text = ("+" if "+" in fmt else "") + text[1:]
    return text


def _signed(x, fmt: str = "+.4f") -> str:
    return _num(x, fmt)


def _percent(x) -> str:
    return "n/a" if x is None else _num(100 * x, "+.2f") + " %"


def _wtl(block: dict | None) -> str:
    return "n/a" if block is None else f"{block['wins']} / {block['ties']} / {block['losses']}"


def _mean_std(stats: dict, fmt: str = ".4f") -> str:
    if stats["mean"] is None:
        return "n/a"
    return _num(stats["mean"], fmt) + ("" if stats["std"] is None else f" ± {_num(stats['std'], fmt)}")


def _table(rows: list[dict]) -> str:
    from jacdistill.benchmarks.harness import table

    if not rows:
        return "(none)"
    return table(rows, [(key, "s") for key in rows[0]])


def _headline_rows(students: dict, treatment: str) -> list[dict]:
    rows = []
    for student, agg in students.items():
        block = agg if treatment == "regularized" else agg["augmented"]
        if block is None:
            continue
        rows.append({
            "student": student,
            "datasets": _num(block["vs_baseline"]["n_datasets"], "d") if block["vs_baseline"] else "n/a",
            "mean relative gain": _percent(block["mean_relative_gain"]),
            "median ΔR²": _signed(block["median_delta_r2"]),
            "W / T / L": _wtl(block["vs_baseline"]),
            "median ΔR² vs direct": _signed(block["median_delta_r2_vs_direct"]),
            "W / T / L vs direct": _wtl(block["vs_direct"]),
            "median ΔR² vs control": _signed(block["median_delta_r2_vs_control"]),
            "W / T / L vs control": _wtl(block["vs_control"]),
            "median Δ teacher R²": _signed(block["median_delta_teacher_r2"]),
            "median Δ fidelity": _signed(block["median_delta_fidelity_r2"]),
        })
    return rows


def _paired_rows(students: dict) -> list[dict]:
    rows = []
    for student, agg in students.items():
        for block in (agg, agg["augmented"]):
            if block is None:
                continue
            treatment = block.get("treatment", "regularized")
            for ref in REFERENCES:
                comparison = block[f"vs_{ref}"]
                for row in comparison["per_dataset"] if comparison else ():
                    rows.append({
                        "dataset": row["dataset"], "student": student, "comparison": f"{treatment} − {ref}",
                        "pairs": str(row["n"]), "mean R² (treatment)": _num(row["treatment_r2"]),
                        "mean R² (reference)": _num(row["reference_r2"]),
                        "mean ΔR²": _signed(row["mean_delta_r2"]), "relative gain": _percent(row["relative_gain"]),
                        "p": _num(row["p_value"]), "outcome": row["outcome"],
                    })
    return sorted(rows, key=lambda r: (r["dataset"], r["student"]))


def _per_dataset_rows(table_rows: list[dict]) -> list[dict]:
    rows = []
    for entry in table_rows:
        for arm, s in entry["arms"].items():
            lam = s["lam"]
            lam_text = "n/a" if lam is None else (
                f"{lam['median']:.3g}" if lam["min"] == lam["max"] else
                f"{lam['median']:.3g} [{lam['min']:.3g}, {lam['max']:.3g}]")
            rows.append({
                "dataset": entry["dataset"], "student": entry["student"], "arm": arm,
                "seeds": str(s["n"]) + (f" ({s['failures']} failed)" if s["failures"] else ""),
                "teacher R²": _mean_std(s["teacher_r2_test"]), "student R²": _mean_std(s["student_r2_test"]),
                "fidelity R²": _mean_std(s["fidelity_r2_test"]), "complexity": _mean_std(s["complexity"], ".1f"),
                "λ median [min, max]": lam_text,
            })
    return rows


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _statement(student: str, agg: dict, candidates: float | None) -> list[str]:
    """The result for one student in plain words."""
    lines = []
    for block in (agg, agg["augmented"]):
        if block is None:
            continue
        name = block.get("treatment", "regularized")
        base = block["vs_baseline"]
        if base is None or base["n_datasets"] == 0:
            lines.append(f"**{student}**: no {name}/baseline pairs with a finite student R² to compare.")
            continue
        text = (f"**{student}**: {name} distillation beat the λ=0 baseline on {base['wins']} of "
                f"{_count(base['n_datasets'], 'dataset')} (tied {base['ties']}, lost {base['losses']}; "
                f"paired Wilcoxon signed-rank over seeds, α = {ALPHA}); mean relative gain "
                f"{_percent(base['mean_relative_gain'])}, median ΔR² {_signed(base['median_delta_r2'])}.")
        others = []
        for ref in ("direct", "control"):
            comparison = block[f"vs_{ref}"]
            if comparison is None or comparison["n_datasets"] == 0:
                continue
            words = REFERENCE_WORDS[ref]
            if ref == "control" and candidates is not None:
                words += f" (the best on validation of {candidates:g} λ=0 teachers)"
            others.append((ref, comparison))
            text += (f" Against {words} it won on {comparison['wins']} of "
                     f"{_count(comparison['n_datasets'], 'dataset')}, tied {comparison['ties']}, lost "
                     f"{comparison['losses']} (median ΔR² {_signed(comparison['median_delta_r2'])}).")
        never = [REFERENCE_WORDS[ref].split(" (")[0] for ref, c in others if c["wins"] == 0]
        if base["wins"] == 0:
            never.insert(0, REFERENCE_WORDS["baseline"])
        if never:
            listed = never[0] if len(never) == 1 else f"{', '.join(never[:-1])} or {never[-1]}"
            text += f" It never significantly beat {listed} on any dataset."
        failed = [f"{arm} {n}" for arm, n in agg["failures"].items()
                  if n and arm in (name, "baseline", "direct", "control")]
        if failed:
            text += f" Failed trials (student test R² null, left out pairwise): {', '.join(failed)}."
        lines.append(text)
    return lines


def render_markdown(sweep_dir: str | Path, trials: list[dict], agg: dict, table_rows: list[dict],
                    settings: dict | None = None, settings_error: str | None = None) -> str:
    sweep_dir = Path(sweep_dir)
    now = dt.datetime.now().isoformat(timespec="seconds")
    mtimes = [p.stat().st_mtime for p in (sweep_dir / "trials").glob("*.json") if not p.name.startswith(".")]
    written = ""
    if mtimes:
        first, last = (dt.datetime.fromtimestamp(t).isoformat(timespec="seconds") for t in (min(mtimes), max(mtimes)))
        written = f", written {first} to {last}"
    seconds = sum(v for v in (_value(t.get("seconds")) for t in trials) if v is not None)
    controls = [v for v in (_value(t.get("candidates")) for t in trials if t["arm"] == "control") if v is not None]
    candidates = statistics.median(controls) if controls else None
    from jacdistill import __version__

    out = [f"# Sweep report: {sweep_dir.name}", "",
           f"Generated {now} by jacdistill {__version__} from `{sweep_dir}`: "
           f"{_count(agg['n_trials'], 'trial')}{written}; {agg['n_failures']} failed (student test R² null); "
           f"{seconds:.0f} s of trial time in all.", "",
           f"- datasets ({len(agg['datasets'])}): {', '.join(agg['datasets'])}",
           f"- students ({len(agg['students'])}): {', '.join(agg['students'])}",
           f"- arms: {', '.join(agg['arms'])}",
           f"- seeds ({len(agg['seeds'])}): {', '.join(map(str, agg['seeds']))}", ""]
    if settings is not None:
        out += ["Sweep settings (`sweep.json`):", "", "```json", storage.to_json(settings), "```", ""]
    elif settings_error:
        out += [f"({settings_error})", ""]
    out += ["## Result", ""]
    for student, student_agg in agg["students"].items():
        out += [f"- {line}" for line in _statement(student, student_agg, candidates)]
    out += ["", "## Regularized vs baseline, per student", "",
            "Student test R², paired on (dataset, seed). W / T / L: datasets won, tied, lost "
            f"(two-sided Wilcoxon signed-rank over seeds, α = {ALPHA}). Mean relative gain: per dataset "
            "(mean regularized − mean baseline) / |mean baseline|, averaged over datasets. Δ teacher R² "
            "and Δ fidelity (student vs teacher R²): treatment − baseline, test rows, median over datasets "
            "of the seed-paired mean.", "",
            _table(_headline_rows(agg["students"], "regularized")), ""]
    if any(a["augmented"] for a in agg["students"].values()):
        out += ["## Augmented vs baseline, per student", "",
                _table(_headline_rows(agg["students"], "augmented")), ""]
    out += ["## Paired comparisons per dataset", "",
            "Means over the seeds present (with a finite student test R²) in both arms; p: Wilcoxon "
            f"signed-rank, two-sided (n/a: fewer than {MIN_PAIRS} pairs or all differences zero, a tie).", "",
            _table(_paired_rows(agg["students"])), "",
            "## Per dataset: mean ± std over seeds (test rows)", "",
            _table(_per_dataset_rows(table_rows)), "",
            "## Plots", "",
            "Student validation R² against λ (the regularized arm's tuning trials; dots: trials, line: "
            "mean per λ; the constrained and adaptive tuners fit a student only at the λ they chose):", "",
            f"![student R² against λ]({PLOTS[0]})", "",
            "Fidelity to the teacher against accuracy on the test rows:", "",
            f"![fidelity against accuracy]({PLOTS[1]})", "",
            "Mean student test R² per dataset and arm (bars: ± std over seeds):", "",
            f"![per dataset]({PLOTS[2]})", "",
            "## Notes", "",
            f"- α = {ALPHA}, not 0.05: with 5 seeds the smallest exact two-sided Wilcoxon p is 2/2⁵ = 0.0625, "
            "so 0.05 could never be reached; a win at α = 0.1 with 5 seeds needs every seed to improve. "
            "With 3 or 4 paired seeds the smallest p is 0.25 or 0.125, so such a dataset is always a tie.",
            "- The mean relative gain is inflated by small baselines (a baseline R² of 0.05 raised to 0.10 is "
            "+100 %) and is undefined where the baseline mean is exactly 0 (that dataset is left out of it); "
            "the median ΔR² is the robust companion.",
            "- A trial whose student test R² is null (the formula blew up) is a failure: counted in the "
            "tables, and its (dataset, seed) pair is left out of every comparison it takes part in.",
            f"- Plots clip R² below {R2_FLOOR:g}.", ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ plots

def _empty(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _clip(axes, values: list[float], axis: str = "y") -> None:
    if values and min(values) < R2_FLOOR:
        setter = axes.set_ylim if axis == "y" else axes.set_xlim
        setter(R2_FLOOR - 0.05, max(max(values), 0) + 0.05)


def plot_lambda(trials: list[dict], path: Path) -> None:
    """Student validation R² against λ from the regularized arm's tuning trials: the trials as dots,
    their mean per λ as a line, one colour per dataset, one panel per student."""
    plt = storage.pyplot()
    points: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for t in trials:
        if t["arm"] != "regularized" or not isinstance(t.get("tuning"), dict):
            continue
        for record in t["tuning"].get("trials") or ():
            if not isinstance(record, dict) or "schedule" in record:
                continue
            lam, r2 = _value(record.get("lam")), _value(record.get("student_r2_val"))
            if lam is not None and r2 is not None:
                points.setdefault(t["student"], {}).setdefault(t["dataset"], []).append((lam, r2))
    students = sorted(points) or [None]
    figure, panels = plt.subplots(1, len(students), figsize=(6 * len(students), 4), squeeze=False)
    for axes, student in zip(panels[0], students):
        if student is None:
            _empty(axes, "no tuning trials with a student validation R² in the regularized arm")
            continue
        lams, ys = [], []
        for i, (dataset, pts) in enumerate(sorted(points[student].items())):
            color = f"C{i % 10}"
            axes.scatter(*zip(*pts), color=color, alpha=0.35, s=14)
            by_lam: dict[float, list[float]] = {}
            for lam, r2 in pts:
                by_lam.setdefault(lam, []).append(r2)
            line = sorted((lam, statistics.fmean(v)) for lam, v in by_lam.items())
            axes.plot(*zip(*line), color=color, marker="o", label=dataset)
            lams += [lam for lam, _ in pts]
            ys += [r2 for _, r2 in pts]
        smallest = min([lam for lam in lams if lam > 0] or [1e-4])
        axes.set_xscale("symlog", linthresh=smallest)
        axes.set_xlim(left=-smallest / 2)
        _clip(axes, ys)
        axes.set_xlabel("λ")
        axes.set_ylabel("student R², validation")
        axes.set_title(f"{student}: regularized arm, tuning trials")
        axes.legend(fontsize="small")
    storage.write_figure(path, figure)


def plot_fidelity(trials: list[dict], path: Path) -> None:
    """Fidelity R² (student vs teacher) against student R² (vs the truth) on the test rows, per trial,
    coloured by arm (marker by student when there are several)."""
    plt = storage.pyplot()
    figure, axes = plt.subplots(figsize=(6, 5))
    markers = "osD^v<>pPX*h"
    students = sorted({t["student"] for t in trials})
    xs, ys = [], []
    for arm in _arms(trials):
        for k, student in enumerate(students):
            pts = [(_value(t.get("fidelity_r2_test")), _value(t.get("student_r2_test")))
                   for t in trials if t["arm"] == arm and t["student"] == student]
            pts = [(x, y) for x, y in pts if x is not None and y is not None]
            if not pts:
                continue
            label = arm if len(students) == 1 else f"{arm}, {student}"
            axes.scatter(*zip(*pts), color=ARM_COLORS.get(arm, "k"), marker=markers[k % len(markers)],
                         alpha=0.7, s=22, label=label)
            xs += [x for x, _ in pts]
            ys += [y for _, y in pts]
    if not xs:
        _empty(axes, "no trial with both a fidelity and a student test R²")
    else:
        _clip(axes, xs, "x")
        _clip(axes, ys, "y")
        axes.set_xlabel("fidelity R² (student vs teacher), test")
        axes.set_ylabel("student R² (vs truth), test")
        axes.set_title("fidelity against accuracy")
        axes.legend(fontsize="small")
    storage.write_figure(path, figure)


def plot_per_dataset(table_rows: list[dict], path: Path) -> None:
    """Mean student test R² per dataset (and student) for each arm present, ± std over seeds."""
    plt = storage.pyplot()
    arms = sorted({arm for row in table_rows for arm in row["arms"]}, key=lambda a: (_arm_rank(a), a))
    several = len({row["student"] for row in table_rows}) > 1
    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(table_rows) + 2), 4))
    width = 0.8 / max(len(arms), 1)
    heights = []
    for j, arm in enumerate(arms):
        xs, means, errs = [], [], []
        for i, row in enumerate(table_rows):
            stats = row["arms"].get(arm, {}).get("student_r2_test")
            if stats and stats["mean"] is not None:
                xs.append(i - 0.4 + width * (j + 0.5))
                means.append(stats["mean"])
                errs.append(stats["std"] or 0.0)
        if xs:
            axes.bar(xs, means, width, yerr=errs, capsize=2, color=ARM_COLORS.get(arm, f"C{j}"), label=arm)
            heights += means
    if not heights:
        _empty(axes, "no trial with a student test R²")
    else:
        axes.set_xticks(range(len(table_rows)))
        axes.set_xticklabels([f"{r['dataset']}\n{r['student']}" if several else r["dataset"] for r in table_rows],
                             rotation=30 if len(table_rows) > 6 else 0)
        axes.axhline(0, color="black", linewidth=0.6)
        _clip(axes, heights)
        axes.set_ylabel("mean student R², test")
        axes.set_title("student test R² per dataset and arm")
        axes.legend(fontsize="small")
    storage.write_figure(path, figure)


# ------------------------------------------------------------------------------------------- write

def write_report(sweep_dir: str | Path) -> Path:
    """Write ``report.md`` and its three PNGs (``PLOTS``) into the sweep directory, each atomically;
    the plots first, ``report.md`` last. Returns the path of ``report.md``."""
    sweep_dir = Path(sweep_dir)
    trials = load_trials(sweep_dir)
    settings, settings_error = read_settings(sweep_dir)
    agg, table_rows = aggregate(trials), per_dataset(trials)
    plot_lambda(trials, sweep_dir / PLOTS[0])
    plot_fidelity(trials, sweep_dir / PLOTS[1])
    plot_per_dataset(table_rows, sweep_dir / PLOTS[2])
    path = sweep_dir / "report.md"
    storage.write_text(path, render_markdown(sweep_dir, trials, agg, table_rows, settings, settings_error))
    return path
