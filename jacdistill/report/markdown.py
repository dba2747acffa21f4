"""The report as Markdown: plain-words results per student, tables of the aggregates (over datasets,
per dataset, under complexity caps), the plots and notes on reading them."""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path

from jacdistill import storage
from jacdistill.report.loading import CAPS, finite, ordered_arms
from jacdistill.report.plots import FRONTS_PLOT, LINTHRESH, PLOTS, R2_FLOOR
from jacdistill.report.stats import ALPHA, ALPHA_DATASETS, LEVEL, MIN_PAIRS, RESAMPLES
from jacdistill.tables import markdown_table
from jacdistill.trials import REFERENCES, TREATMENTS

CI = f"{100 * LEVEL:g} % CI"
REFERENCE_WORDS = {
    "baseline": "the λ=0 baseline",
    "direct": "direct fitting (no teacher)",
    "control": "the λ=0 control",
}


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


def _ci(ci: list[float] | None) -> str:
    return "n/a" if ci is None else f"[{_signed(ci[0])}, {_signed(ci[1])}]"


def _wtl(block: dict | None) -> str:
    return "n/a" if block is None else f"{block['wins']} / {block['ties']} / {block['losses']}"


def _mean_std(stats: dict, fmt: str = ".4f") -> str:
    if stats["mean"] is None:
        return "n/a"
    return _num(stats["mean"], fmt) + ("" if stats["std"] is None else f" ± {_num(stats['std'], fmt)}")


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    return markdown_table(rows, [(key, "s") for key in rows[0]])


def _headline_rows(students: dict, treatment: str) -> list[dict]:
    rows = []
    for student, agg in students.items():
        block = agg if treatment == "regularized" else agg["augmented"]
        if block is None:
            continue
        rows.append(
            {
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
            }
        )
    return rows


def _treatment_blocks(students: dict):
    """(student, treatment, block) for each treatment arm each student has."""
    for student, agg in students.items():
        for block in (agg, agg["augmented"]):
            if block is not None:
                yield student, block.get("treatment", "regularized"), block


def _pooled_rows(student: str, treatment: str, block: dict, cap: str | None = None) -> list[dict]:
    """Each comparison of one treatment over datasets: the mean ΔR² with its interval and test, the
    median ΔR², the relative gain and the per-dataset outcomes."""
    rows = []
    for ref in REFERENCES:
        c = block[f"vs_{ref}"]
        if c is None or c["n_datasets"] == 0:
            continue
        rows.append(
            {
                "student": student,
                **({} if cap is None else {"cap": f"≤ {cap}"}),
                "comparison": f"{treatment} − {ref}",
                "datasets": str(c["n_datasets"]),
                "pairs": str(c["n_pairs"]),
                "mean ΔR²": _signed(c["mean_delta_r2"]),
                CI: _ci(c["ci"]),
                "p (datasets)": _num(c["p_value"]),
                "outcome": c["outcome"],
                "median ΔR²": _signed(c["median_delta_r2"]),
                f"median {CI}": _ci(c["median_ci"]),
                "mean relative gain": _percent(c["mean_relative_gain"]),
                "W / T / L": _wtl(c),
            }
        )
    return rows


def _paired_rows(students: dict) -> list[dict]:
    rows = []
    for student, treatment, block in _treatment_blocks(students):
        for ref in REFERENCES:
            comparison = block[f"vs_{ref}"]
            for row in comparison["per_dataset"] if comparison else ():
                rows.append(
                    {
                        "dataset": row["dataset"],
                        "student": student,
                        "comparison": f"{treatment} − {ref}",
                        "pairs": str(row["n"]),
                        "mean R² (treatment)": _num(row["treatment_r2"]),
                        "mean R² (reference)": _num(row["reference_r2"]),
                        "mean ΔR²": _signed(row["mean_delta_r2"]),
                        CI: _ci(row["ci"]),
                        "relative gain": _percent(row["relative_gain"]),
                        "p": _num(row["p_value"]),
                        "outcome": row["outcome"],
                    }
                )
    return sorted(rows, key=lambda r: (r["dataset"], r["student"]))


def _cap_lines(agg: dict) -> list[str]:
    """The complexity-cap section: capped test R² per arm, the paired comparisons at each cap, the
    plot; one line where no trial recorded a front."""
    out = ["## Under complexity caps", ""]
    if not agg["n_fronts"]:
        return out + [
            "No fronts recorded (no trial has a `front`): nothing to read under a complexity cap.",
            "",
        ]
    caps = {s: a["caps"] for s, a in agg["students"].items() if a["caps"] is not None}
    arm_rows = [
        {
            "student": student,
            "arm": arm,
            "trials with a front": str(s["fronts"]),
            **{
                (f"≤ {key}" if key != "selected" else key): _num(s[key]["mean"])
                + ("" if s[key]["n"] == s["fronts"] else f" ({s[key]['n']})")
                for key in (*map(str, CAPS), "selected")
            },
        }
        for student, c in caps.items()
        for arm, s in c["arms"].items()
    ]
    comparison_rows = [
        row
        for student, c in caps.items()
        for cap, blocks in c["comparisons"].items()
        for treatment, block in blocks.items()
        for row in _pooled_rows(student, treatment, block, cap)
    ]
    order = [f"{treatment} − {ref}" for treatment in TREATMENTS for ref in REFERENCES]
    return out + [
        f"A trial's R² under cap K: the test R² of its front's member with the highest validation R² "
        f"among those of complexity ≤ K (caps {', '.join(map(str, CAPS))}); selected: the formula the "
        f"trial chose, without a cap. {_count(agg['n_fronts'], 'trial')} recorded a front.",
        "",
        "Mean student test R² over the trials with a front (in brackets: how many of them have a "
        "member within the cap, where not all):",
        "",
        _table(arm_rows),
        "",
        "Paired comparisons at each cap, as in the tables above (pairs: both trials have a member "
        "within the cap):",
        "",
        _table(sorted(comparison_rows, key=lambda r: (r["student"], order.index(r["comparison"])))),
        "",
        "Median over seeds of the capped student test R², per dataset and arm:",
        "",
        f"![student R² under complexity caps]({FRONTS_PLOT})",
        "",
    ]


def _share(x) -> str:
    return "n/a" if x is None else f"{_num(100 * x, '.0f')} %"


def _rate(r: dict) -> str:
    """A solution rate as "40 % (2/5)", with the undecided trials where there are any."""
    return f"{_share(r['rate'])} ({r['solved']}/{r['decided']})" + (
        f", {r['undecided']} undecided" if r["undecided"] else ""
    )


def _solved(r: dict) -> str:
    return f"{r['solved']}/{r['decided']}"


def _interval(r: dict) -> str:
    return "n/a" if r["ci"] is None else f"[{_share(r['ci'][0])}, {_share(r['ci'][1])}]"


def _ground_truth_lines(gt: dict | None) -> list[str]:
    """The ground-truth section: solution rates per student and arm, per noise level and n, and the
    paired comparisons against the noiseless target; nothing without generated problems."""
    if gt is None:
        return []
    students = gt["students"]
    rate_rows = [
        {
            "student": student,
            "arm": arm,
            "trials": str(r["n_trials"]),
            "solved / decided": _solved(r),
            "undecided": str(r["undecided"]),
            "rate": _share(r["rate"]),
            f"{CI} (Wilson)": _interval(r),
            "full precision": _rate(full) + f" {_interval(full)}" if full["n_trials"] else "–",
        }
        for student, s in students.items()
        for arm, r in s["solution_rate"].items()
        for full in [s["solution_rate_full_precision"][arm]]
    ]
    arms = ordered_arms(arm for s in students.values() for arm in s["solution_rate"])
    size_rows = [
        {
            "student": student,
            "noise": _num(row["noise"], "g"),
            "n": _num(row["n"], "d"),
            **{arm: _rate(row["arms"][arm]) if arm in row["arms"] else "–" for arm in arms},
        }
        for student, s in students.items()
        for row in s["by_problem"]
    ]
    equation_rows = [
        {
            "student": student,
            "equation": row["equation"],
            **{
                arm: f"{_rate(row['arms'][arm])}; full {_solved(row['arms_full_precision'][arm])}"
                if arm in row["arms"]
                else "–"
                for arm in arms
            },
        }
        for student, s in students.items()
        for row in s["by_equation"]
    ]
    delta_rows = [
        row
        for student, s in students.items()
        for treatment, block in s["comparisons"].items()
        for row in _pooled_rows(student, treatment, block)
    ]
    out = [
        "## Ground truth",
        "",
        f"{_count(gt['n_trials'], 'trial')} on generated problems with a known formula "
        f"({', '.join(gt['datasets'])}). Solved: the chosen formula is a symbolic solution of the "
        "true one (SRBench's test), as shown (constants rounded as far as validation R² allows); full "
        "precision: the same formula with its constants as fitted. Rate: solved / decided, with a "
        "Wilson score interval; undecided trials (the test ran out of time) are counted but left out "
        "of the rate.",
        "",
        _table(rate_rows),
        "",
    ]
    if len(size_rows) > len(students):  # one size per student would repeat the table above
        out += ["Solution rate per noise level and n:", "", _table(size_rows), ""]
    if len(equation_rows) > len(students):
        out += [
            "Solution rate per equation (full: solved / decided in full precision):",
            "",
            _table(equation_rows),
            "",
        ]
    return out + [
        "Student test R² against the noiseless target, paired and tested as in the tables above:",
        "",
        _table(delta_rows),
        "",
    ]


def _per_dataset_rows(table_rows: list[dict]) -> list[dict]:
    rows = []
    for entry in table_rows:
        for arm, s in entry["arms"].items():
            lam = s["lam"]
            lam_text = (
                "n/a"
                if lam is None
                else (
                    f"{lam['median']:.3g}"
                    if lam["min"] == lam["max"]
                    else f"{lam['median']:.3g} [{lam['min']:.3g}, {lam['max']:.3g}]"
                )
            )
            rows.append(
                {
                    "dataset": entry["dataset"],
                    "student": entry["student"],
                    "arm": arm,
                    "seeds": str(s["n"]) + (f" ({s['failures']} failed)" if s["failures"] else ""),
                    "teacher R²": _mean_std(s["teacher_r2_test"]),
                    "student R²": _mean_std(s["student_r2_test"]),
                    "fidelity R²": _mean_std(s["fidelity_r2_test"]),
                    "complexity": _mean_std(s["complexity"], ".1f"),
                    "λ median [min, max]": lam_text,
                }
            )
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
        text = (
            f"**{student}**: {name} distillation beat the λ=0 baseline on {base['wins']} of "
            f"{_count(base['n_datasets'], 'dataset')} (tied {base['ties']}, lost {base['losses']}; "
            f"paired Wilcoxon signed-rank over seeds, α = {ALPHA}); mean relative gain "
            f"{_percent(base['mean_relative_gain'])}, median ΔR² {_signed(base['median_delta_r2'])}; "
            f"mean ΔR² {_signed(base['mean_delta_r2'])} ({CI} {_ci(base['ci'])}, Wilcoxon over "
            f"datasets p = {_num(base['p_value'])})."
        )
        others = []
        for ref in ("direct", "control"):
            comparison = block[f"vs_{ref}"]
            if comparison is None or comparison["n_datasets"] == 0:
                continue
            words = REFERENCE_WORDS[ref]
            if ref == "control" and candidates is not None:
                words += f" (the best on validation of {candidates:g} λ=0 teachers)"
            others.append((ref, comparison))
            text += (
                f" Against {words} it won on {comparison['wins']} of "
                f"{_count(comparison['n_datasets'], 'dataset')}, tied {comparison['ties']}, lost "
                f"{comparison['losses']} (median ΔR² {_signed(comparison['median_delta_r2'])})."
            )
        never = [REFERENCE_WORDS[ref].split(" (")[0] for ref, c in others if c["wins"] == 0]
        if base["wins"] == 0:
            never.insert(0, REFERENCE_WORDS["baseline"])
        if never:
            listed = never[0] if len(never) == 1 else f"{', '.join(never[:-1])} or {never[-1]}"
            text += f" It never significantly beat {listed} on any dataset."
        failed = [
            f"{arm} {n}"
            for arm, n in agg["failures"].items()
            if n and arm in (name, "baseline", "direct", "control")
        ]
        if failed:
            text += f" Failed trials (student test R² null, left out pairwise): {', '.join(failed)}."
        lines.append(text)
    return lines


def render_markdown(
    sweep_dir: str | Path,
    trials: list[dict],
    agg: dict,
    table_rows: list[dict],
    settings: dict | None = None,
    settings_error: str | None = None,
) -> str:
    sweep_dir = Path(sweep_dir)
    now = dt.datetime.now().isoformat(timespec="seconds")
    mtimes = [p.stat().st_mtime for p in (sweep_dir / "trials").glob("*.json") if not p.name.startswith(".")]
    written = ""
    if mtimes:
        first, last = (
            dt.datetime.fromtimestamp(t).isoformat(timespec="seconds") for t in (min(mtimes), max(mtimes))
        )
        written = f", written {first} to {last}"
    seconds = sum(v for v in (finite(t.get("seconds")) for t in trials) if v is not None)
    controls = [
        v for v in (finite(t.get("candidates")) for t in trials if t["arm"] == "control") if v is not None
    ]
    candidates = statistics.median(controls) if controls else None
    from jacdistill import __version__

    out = [
        f"# Sweep report: {sweep_dir.name}",
        "",
        f"Generated {now} by jacdistill {__version__} from `{sweep_dir}`: "
        f"{_count(agg['n_trials'], 'trial')}{written}; {agg['n_failures']} failed (student test R² null); "
        f"{seconds:.0f} s of trial time in all.",
        "",
        f"- datasets ({len(agg['datasets'])}): {', '.join(agg['datasets'])}",
        f"- students ({len(agg['students'])}): {', '.join(agg['students'])}",
        f"- arms: {', '.join(agg['arms'])}",
        f"- seeds ({len(agg['seeds'])}): {', '.join(map(str, agg['seeds']))}",
        "",
    ]
    if settings is not None:
        out += ["Sweep settings (`sweep.json`):", "", "```json", storage.to_json(settings), "```", ""]
    elif settings_error:
        out += [f"({settings_error})", ""]
    out += ["## Result", ""]
    for student, student_agg in agg["students"].items():
        out += [f"- {line}" for line in _statement(student, student_agg, candidates)]
    out += [
        "",
        "## Regularized vs baseline, per student",
        "",
        "Student test R², paired on (dataset, seed). W / T / L: datasets won, tied, lost "
        f"(two-sided Wilcoxon signed-rank over seeds, α = {ALPHA}). Mean relative gain: per dataset "
        "(mean regularized − mean baseline) / |mean baseline|, averaged over datasets. Δ teacher R² "
        "and Δ fidelity (student vs teacher R²): treatment − baseline, test rows, median over datasets "
        "of the seed-paired mean.",
        "",
        _table(_headline_rows(agg["students"], "regularized")),
        "",
    ]
    if any(a["augmented"] for a in agg["students"].values()):
        out += [
            "## Augmented vs baseline, per student",
            "",
            _table(_headline_rows(agg["students"], "augmented")),
            "",
        ]
    out += [
        "## Over datasets: mean ΔR² with its interval",
        "",
        "Per comparison, the mean over datasets of the per-dataset mean ΔR² (student test R², seed-"
        f"paired), its {100 * LEVEL:g} % percentile-bootstrap interval over datasets, and a two-sided "
        f"Wilcoxon signed-rank test over the per-dataset mean ΔR² (outcome at α = {ALPHA_DATASETS}); "
        "W / T / L: the per-dataset outcomes.",
        "",
        _table([row for block in _treatment_blocks(agg["students"]) for row in _pooled_rows(*block)]),
        "",
        f"![mean ΔR² per dataset with {100 * LEVEL:g} % intervals]({PLOTS[2]})",
        "",
        "Each row: a dataset's mean ΔR² over seeds with its bootstrap interval, one colour per "
        "reference; the diamonds at the bottom: the mean over datasets with its interval. A filled "
        f"marker is a significant Wilcoxon outcome (α = {ALPHA} per dataset, {ALPHA_DATASETS} over "
        f"datasets). The ΔR² axis is linear within ±{LINTHRESH:g} and logarithmic beyond.",
        "",
        "## Paired comparisons per dataset",
        "",
        "Means over the seeds present (with a finite student test R²) in both arms; CI: percentile "
        "bootstrap over the seed-paired differences; p: Wilcoxon signed-rank, two-sided (n/a: fewer "
        f"than {MIN_PAIRS} pairs or all differences zero, a tie).",
        "",
        _table(_paired_rows(agg["students"])),
        "",
        "## Per dataset: mean ± std over seeds (test rows)",
        "",
        _table(_per_dataset_rows(table_rows)),
        "",
        *_cap_lines(agg),
        *_ground_truth_lines(agg["ground_truth"]),
        "## Plots",
        "",
        "Student validation R² against λ (the regularized arm's tuning trials; dots: trials, line: "
        "mean per λ; the constrained and adaptive tuners fit a student only at the λ they chose):",
        "",
        f"![student R² against λ]({PLOTS[0]})",
        "",
        "Fidelity to the teacher against accuracy on the test rows:",
        "",
        f"![fidelity against accuracy]({PLOTS[1]})",
        "",
        "## Notes",
        "",
        f"- α = {ALPHA}, not 0.05: with 5 seeds the smallest exact two-sided Wilcoxon p is 2/2⁵ = 0.0625, "
        "so 0.05 could never be reached; a win at α = 0.1 with 5 seeds needs every seed to improve. "
        "With 3 or 4 paired seeds the smallest p is 0.25 or 0.125, so such a dataset is always a tie.",
        "- The mean relative gain is inflated by small baselines (a baseline R² of 0.05 raised to 0.10 is "
        "+100 %) and is undefined where the baseline mean is exactly 0 (that dataset is left out of it); "
        "the median ΔR² is the robust companion.",
        f"- Intervals: percentile bootstrap of the mean ({RESAMPLES:,} resamples, fixed seed, so the "
        "report is reproducible). Per dataset they resample the seeds; with 5 seeds the interval is "
        "too narrow for its nominal coverage (at 95 %, about ±1.75 rather than ±2.78 standard "
        "errors), so read it as the effect's scale. Over datasets they resample datasets, each "
        f"dataset's mean already carrying its seeds' noise. Fewer than {MIN_PAIRS} seeds or "
        "datasets: no interval.",
        "- A trial whose student test R² is null (the formula blew up) is a failure: counted in the "
        "tables, and its (dataset, seed) pair is left out of every comparison it takes part in.",
        f"- Plots clip R² below {R2_FLOOR:g}.",
        "",
    ]
    return "\n".join(out)
