"""Which settings let regularized distillation beat direct SR and the compute-matched control?

Each variant changes one setting of the recorded suite (``benchmarks/distill_suite.py``) and runs,
as its own resumable sweep under ``benchmarks/results/settings_study/<variant>/``, only the arms
that setting changes, on four small datasets where the students sit well below the teacher (or
the datasets it names), seeds 0–4. An arm a variant leaves unchanged is the same computation as
the suite's (same split, seeds and settings; CPU runs are deterministic), so its trials are read
from the suite, not rerun.
``summary.md`` and ``summary.json`` then compare every variant's treatment arms with direct SR,
the λ = 0 baseline and the control, with the suite's paired Wilcoxon test.

Run: ``python benchmarks/settings_study.py [VARIANT ...]`` (default: all, in the order listed);
``--summary`` only rewrites the summary from the trials there.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import sys
import time
from pathlib import Path

from jacdistill import storage
from jacdistill import sweep as sweeps
from jacdistill.report import loading, stats
from jacdistill.trials import ARMS, REFERENCES, TREATMENTS

RESULTS = Path(__file__).resolve().parent / "results"  # not the working directory
SUITE = RESULTS / "distill_suite"
OUT = RESULTS / "settings_study"
DATASETS = ("servo", "machine_cpu", "real_estate", "concrete")
SEEDS = (0, 1, 2, 3, 4)
STUDENTS = ("operon", "gplearn", "tree")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    what: str
    changes: dict  # SweepSpec fields that differ from the suite's
    arms: tuple[str, ...]  # the arms those changes affect; the others are the suite's trials
    students: tuple[str, ...] = STUDENTS
    datasets: tuple[str, ...] = DATASETS
    reuse: tuple[str, ...] = ()  # variants whose trials stand in, before the suite's, for arms not run

    def shows(self, arm: str) -> bool:
        """Whether the variant reports this arm: a reference arm, or a treatment it ran (the
        suite's treatment trials are not this variant's)."""
        return not self.arms or arm in self.arms or arm in REFERENCES


VARIANTS = (
    Variant(
        "suite",
        "the recorded suite itself: Jacobian penalty, constrained tuner (largest λ within "
        "5 % of the λ = 0 teacher's validation MSE), 64-64 silu teacher",
        {},
        (),
    ),
    Variant(
        "lam-0.1",
        "a fixed strong λ = 0.1, no tuning (one teacher: the compute-matched control is "
        "the baseline; the suite's control had 6 teachers)",
        {"lam": 0.1},
        ("regularized", "augmented"),
    ),
    Variant(
        "hessian",
        "the Hessian penalty ‖∂²f/∂x²‖² instead of the Jacobian, constrained tuner "
        "(control: the suite's, k = the Jacobian tuner's teachers)",
        {"regularizer": "hessian"},
        ("regularized", "augmented"),
    ),
    Variant(
        "grid",
        "λ chosen by the student's validation R² over {0, 1e-4, …, 1} (the paper's "
        "protocol): a student per candidate, as many as the control fits",
        {"tuner": "grid"},
        ("regularized", "control"),
    ),
    Variant(
        "augment-x10",
        "augmented arm with 10 teacher-labelled points per training row, jitter "
        "0.05 of each feature's spread (suite: 2 and 0.1)",
        {"augment": 10.0, "jitter": 0.05},
        ("augmented",),
    ),
    Variant(
        "operon-no-constopt",
        "Operon without constant optimisation and 20 generations (the "
        "issue's pilot student; suite: 5 local-search iterations, 100 generations)",
        {"student_options": {"operon": {"optimizer_iterations": 0, "generations": 20}}},
        ("direct", "baseline", "regularized", "control"),
        ("operon",),
    ),
    Variant(
        "teacher-128x2",
        "a 128-128 teacher, 4× the suite's 64-64 hidden-to-hidden weights "
        "(wider ones cost too much on this CPU)",
        {"teacher": {"widths": [128, 128]}},
        ("baseline", "regularized", "control"),
        ("operon",),
    ),
    Variant(
        "grid-more",
        "the grid variant on four more datasets, for the one setting that moved gplearn",
        {"tuner": "grid"},
        ("regularized", "control"),
        datasets=("yacht", "auto_mpg", "esl", "energy_heating"),
    ),
    Variant(
        "grid-restarts",
        "the grid tuner with restarts: candidate i's student seeded seed + 1000·i, "
        "as the control seeds its candidates, so both choose among six independent student runs "
        "(control: the grid variants', the same k = 6 computation)",
        {"tuner": "grid", "tuner_options": {"restarts": True}},
        ("regularized",),
        ("gplearn",),
        datasets=DATASETS + ("yacht", "auto_mpg", "esl", "energy_heating"),
        reuse=("grid", "grid-more"),
    ),
)


def spec_for(variant: Variant) -> sweeps.SweepSpec:
    base = sweeps.SweepSpec.from_settings(storage.read_json(SUITE / "sweep.json"))
    return dataclasses.replace(
        base,
        datasets=variant.datasets,
        students=variant.students,
        seeds=SEEDS,
        arms=variant.arms,
        **variant.changes,
    )


@functools.cache
def suite_trials() -> list[dict]:
    return loading.load_trials(SUITE)


def trials_of(variant: Variant) -> list[dict]:
    """The variant's own trials; for the arms it does not run, those of the variants it reuses,
    then the suite's."""
    wanted = lambda t: (
        t["dataset"] in variant.datasets and t["student"] in variant.students and t["seed"] in SEEDS
    )
    key = lambda t: (t["dataset"], t["student"], t["arm"], t["seed"])
    found: dict[tuple, dict] = {}
    for name in (variant.name, *variant.reuse):
        if any((OUT / name).glob("trials/*.json")):
            for t in loading.load_trials(OUT / name):
                if wanted(t) and (name == variant.name or t["arm"] not in variant.arms):
                    found.setdefault(key(t), t)
    for t in suite_trials():
        if wanted(t) and t["arm"] not in variant.arms:
            found.setdefault(key(t), t)
    return list(found.values())


def run(variant: Variant, workers: int = 2) -> None:
    if not variant.arms:
        return
    spec, out = spec_for(variant), OUT / variant.name
    sweeps.prepare(out, spec)
    started, units = time.perf_counter(), len(sweeps.pending(out, spec))
    print(f"{variant.name}: {units} units to run", flush=True)
    ran = sweeps.execute(
        spec, out, workers=workers, on_done=lambda n: print(f"  {variant.name}: {n} trials", flush=True)
    )
    print(f"{variant.name}: {ran} trials in {time.perf_counter() - started:.0f} s", flush=True)


def _mean(values) -> float | None:
    finite = [v for v in values if isinstance(v, (int, float)) and v == v]
    return statistics.fmean(finite) if finite else None


def arm_means(variant: Variant, trials: list[dict]) -> list[dict]:
    """Per student and dataset: each arm's mean student test R², the teachers' mean test R² and
    the median λ of the regularized arm."""
    rows = []
    for student, dataset in sorted({(t["student"], t["dataset"]) for t in trials}):
        mine = [t for t in trials if t["student"] == student and t["dataset"] == dataset]
        of = lambda arm, key, mine=mine: [t[key] for t in mine if t["arm"] == arm]
        rows.append(
            {
                "variant": variant.name,
                "student": student,
                "dataset": dataset,
                **{arm: _mean(of(arm, "student_r2_test")) if variant.shows(arm) else None for arm in ARMS},
                "teacher_baseline": _mean(of("baseline", "teacher_r2_test")),
                "teacher_regularized": _mean(of("regularized", "teacher_r2_test")),
                "lam": statistics.median(of("regularized", "lam")) if of("regularized", "lam") else None,
            }
        )
    return rows


def summarize(variants=VARIANTS) -> dict:
    rows, means = [], []
    for variant in variants:
        trials = trials_of(variant)
        means += arm_means(variant, trials)
        for student, block in stats.aggregate(trials)["students"].items():
            for treatment in filter(variant.shows, TREATMENTS):
                found = block if treatment == "regularized" else block["augmented"]
                if found is None or found["vs_baseline"] is None:
                    continue
                versus = {ref: found[f"vs_{ref}"] for ref in REFERENCES}
                beats_both = (
                    sorted(
                        {r["dataset"] for r in versus["direct"]["per_dataset"] if r["outcome"] == "win"}
                        & {r["dataset"] for r in versus["control"]["per_dataset"] if r["outcome"] == "win"}
                    )
                    if versus["direct"] and versus["control"]
                    else []
                )
                rows.append(
                    {
                        "variant": variant.name,
                        "student": student,
                        "treatment": treatment,
                        "ran": list(variant.arms),
                        **versus,
                        "beats_direct_and_control": beats_both,
                    }
                )
    return {
        "seeds": list(SEEDS),
        "alpha": stats.ALPHA,
        "test": stats.TEST,
        "variants": [dataclasses.asdict(v) for v in variants],
        "rows": rows,
        "means": means,
    }


def _cell(block: dict | None) -> str:
    if block is None or block["median_delta_r2"] is None:
        return "n/a"
    return f"{block['median_delta_r2']:+.4f} ({block['wins']}/{block['ties']}/{block['losses']})"


def markdown(summary: dict) -> str:
    lines = [
        "# Settings study: when does regularized distillation beat direct SR and the control?",
        "",
        f"Seeds {', '.join(map(str, summary['seeds']))}. "
        "Each variant changes one setting of the recorded suite (`benchmarks/distill_suite.py`) and "
        "reruns only the arms that setting changes; the other arms are the suite's trials (the same "
        "computation). Produced by `python benchmarks/settings_study.py`.",
        "",
        "| variant | what changes | arms run | datasets |",
        "|---|---|---|---|",
        *(
            f"| {v['name']} | {v['what']} | {', '.join(v['arms']) or '(none: the suite)'} | "
            f"{', '.join(v['datasets'])} |"
            for v in summary["variants"]
        ),
        "",
        "Cells: median over datasets of the mean ΔR² (student test R², treatment − reference), then "
        f"datasets won / tied / lost (paired two-sided Wilcoxon over seeds, α = {summary['alpha']}; "
        "with 5 seeds a win needs every seed to improve). Mean relative gain is the paper's headline "
        "(vs baseline).",
        "",
        "| variant | student | treatment | vs baseline | mean rel. gain | vs direct | vs control "
        "| beats direct and control on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        gain = row["baseline"]["mean_relative_gain"]
        lines.append(
            f"| {row['variant']} | {row['student']} | {row['treatment']} | {_cell(row['baseline'])} | "
            f"{'n/a' if gain is None else f'{100 * gain:+.1f} %'} | {_cell(row['direct'])} | "
            f"{_cell(row['control'])} | {', '.join(row['beats_direct_and_control']) or '—'} |"
        )
    winners = [
        f"{r['variant']}/{r['student']}/{r['treatment']} on {', '.join(r['beats_direct_and_control'])}"
        for r in summary["rows"]
        if r["beats_direct_and_control"]
    ]
    lines += [
        "",
        "**Finding.** "
        + (
            "Significant wins against both direct SR and the control: " + "; ".join(winners) + "."
            if winners
            else "No variant made regularized or augmented distillation significantly beat both direct SR "
            "and the control on any dataset."
        ),
    ]
    arms = ("direct", "baseline", "control", "regularized", "augmented")
    lines += [
        "",
        "## Mean student test R² per dataset",
        "",
        "Over seeds; the arms a variant did not run are the suite's. Teacher: mean test R² of the "
        "λ = 0 and the regularized teacher; λ: median chosen.",
        "",
        f"| variant | student | dataset | {' | '.join(arms)} | teacher λ=0 / reg. | λ |",
        "|---|---|---|" + "---|" * (len(arms) + 2),
    ]
    number = lambda x, fmt=".3f": "n/a" if x is None else format(x, fmt)
    for row in summary["means"]:
        lines.append(
            f"| {row['variant']} | {row['student']} | {row['dataset']} | "
            + " | ".join(number(row[arm]) for arm in arms)
            + f" | {number(row['teacher_baseline'])} / {number(row['teacher_regularized'])} | "
            f"{number(row['lam'], '.3g')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    names = [a for a in argv if not a.startswith("--")]
    unknown = set(names) - {v.name for v in VARIANTS}
    if unknown:
        sys.exit(f"unknown variant {sorted(unknown)[0]}; variants: {', '.join(v.name for v in VARIANTS)}")
    if "--summary" not in argv:
        for variant in VARIANTS:
            if not names or variant.name in names:
                run(variant)
    summary = summarize()
    OUT.mkdir(parents=True, exist_ok=True)
    storage.write_json(OUT / "summary.json", summary)
    storage.write_text(OUT / "summary.md", markdown(summary))
    print(f"summary written to {OUT / 'summary.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
