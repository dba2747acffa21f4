"""The report as Markdown: plain-words results per student, tables of the aggregates, the plots
and notes on reading them."""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path

from jacdistill import storage
from jacdistill.report.loading import finite
from jacdistill.report.plots import PLOTS, R2_FLOOR
from jacdistill.report.stats import ALPHA, MIN_PAIRS
from jacdistill.tables import markdown_table
from jacdistill.trials import REFERENCES

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
                    rows.append(
                        {
                            "dataset": row["dataset"],
                            "student": student,
                            "comparison": f"{treatment} − {ref}",
                            "pairs": str(row["n"]),
                            "mean R² (treatment)": _num(row["treatment_r2"]),
                            "mean R² (reference)": _num(row["reference_r2"]),
                            "mean ΔR²": _signed(row["mean_delta_r2"]),
                            "relative gain": _percent(row["relative_gain"]),
                            "p": _num(row["p_value"]),
                            "outcome": row["outcome"],
                        }
                    )
    return sorted(rows, key=lambda r: (r["dataset"], r["student"]))


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
            f"{_percent(base['mean_relative_gain'])}, median ΔR² {_signed(base['median_delta_r2'])}."
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
        "## Paired comparisons per dataset",
        "",
        "Means over the seeds present (with a finite student test R²) in both arms; p: Wilcoxon "
        f"signed-rank, two-sided (n/a: fewer than {MIN_PAIRS} pairs or all differences zero, a tie).",
        "",
        _table(_paired_rows(agg["students"])),
        "",
        "## Per dataset: mean ± std over seeds (test rows)",
        "",
        _table(_per_dataset_rows(table_rows)),
        "",
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
        "Mean student test R² per dataset and arm (bars: ± std over seeds):",
        "",
        f"![per dataset]({PLOTS[2]})",
        "",
        "## Notes",
        "",
        f"- α = {ALPHA}, not 0.05: with 5 seeds the smallest exact two-sided Wilcoxon p is 2/2⁵ = 0.0625, "
        "so 0.05 could never be reached; a win at α = 0.1 with 5 seeds needs every seed to improve. "
        "With 3 or 4 paired seeds the smallest p is 0.25 or 0.125, so such a dataset is always a tie.",
        "- The mean relative gain is inflated by small baselines (a baseline R² of 0.05 raised to 0.10 is "
        "+100 %) and is undefined where the baseline mean is exactly 0 (that dataset is left out of it); "
        "the median ΔR² is the robust companion.",
        "- A trial whose student test R² is null (the formula blew up) is a failure: counted in the "
        "tables, and its (dataset, seed) pair is left out of every comparison it takes part in.",
        f"- Plots clip R² below {R2_FLOOR:g}.",
        "",
    ]
    return "\n".join(out)
