"""Where does a smoother teacher help? (issue 14): teacher regime × penalty × tuner on the
bundled data sets and on ground-truth Feynman problems.

Each configuration is its own resumable sweep under ``benchmarks/results/smoothness_study/<part>/
<config>/`` with the arms that depend on the teacher (baseline, regularized, control); the direct
arm (symbolic regression on the data, no teacher) is the same computation for every configuration
of a part, so it runs once, in ``<part>/direct/``, and is paired with each.

- regimes: ``early`` (the default: stop after 40 epochs without validation improvement, keep the
  best validation epoch) and ``converged`` (all ``EPOCHS`` epochs, keep the last: the paper's
  trained-to-convergence network);
- penalties: ``jacobian`` (mean‖∂f/∂x‖²_F) and ``lipschitz`` (product of the layers' spectral norms;
  converged teachers only, see ``_plan``);
- tuners: ``constrained`` (largest λ within 5 % of the λ = 0 teacher's validation MSE) and ``grid``
  (the paper's protocol: the student's validation R² over λ ∈ {0, 1e-4, …, 1});
- parts: ``real`` (the 12 bundled data sets; students gplearn and operon) and ``truth`` (10 Feynman
  equations of 2–6 variables × noise {0, 0.01, 0.1} × n {100, 1000}; operon only, the student that
  recovers formulas, for compute), seeds 0–9. On ground truth every student fits inputs scaled
  to unit variance but not centred (``student_inputs="scaled"``: centring turns a monomial into a
  product of affine factors, benchmarks/student_inputs.py); on real data the standardized inputs
  of the first configurations stay, shared by all arms.

Every trial records its front; ``summary.md`` gives each configuration's comparisons and
``<part>/<config>-forest.png`` its forest plot (ΔR² per data set with 95 % intervals).
Configurations run in the order of ``PLAN`` (most informative first), each to the end before the
next. Run: ``python benchmarks/smoothness_study.py [part/config ...]`` (``--summary``: only rewrite
``summary.md`` / ``summary.json`` from the trials there).

The study runs from a frozen checkout of commit 64c6d39 (formulas rounded on the validation rows,
small terms kept), so that later changes to how formulas are shown do not split it; to resume::

    git worktree add ../study 64c6d39 && rm -r ../study/benchmarks/results/smoothness_study
    ln -s "$PWD/benchmarks/results/smoothness_study" ../study/benchmarks/results/
    cd ../study && for d in plugins kernels benchmarks; do ln -s ../$d jacdistill/$d; done
    PYTHONPATH=$PWD python benchmarks/smoothness_study.py

(the links matter: without them the editable install maps ``jacdistill.plugins``, ``.kernels`` and
``.benchmarks`` to this checkout's folders, not the frozen ones; until commit e0f5984 the plugins the
study uses were the same in both).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections import Counter
from pathlib import Path

from jacdistill import storage
from jacdistill import sweep as sweeps
from jacdistill.report import loading, plots, stats

OUT = Path(__file__).resolve().parent / "results" / "smoothness_study"
REAL = ("servo", "machine_cpu", "yacht", "auto_mpg", "real_estate", "esl", "energy_heating",
        "energy_cooling", "concrete", "airfoil", "wine_red", "ccpp")  # fmt: skip
EQUATIONS = ("I.6.2", "I.10.7", "I.12.11", "I.13.12", "I.14.4", "I.16.6", "I.18.4", "I.29.16",
             "I.39.22", "II.6.11")  # fmt: skip
TRUTH = tuple(
    f"feynman:{eq}?n={n}&noise={noise}" for eq in EQUATIONS for noise in (0, 0.01, 0.1) for n in (100, 1000)
)
PARTS = {"real": REAL, "truth": TRUTH}
STUDENTS = ("gplearn", "operon")
SEEDS = tuple(range(10))
EPOCHS = 300  # both regimes: the converged teachers train all of them
REGIMES = {"early": {"patience": 40, "keep": "best"}, "converged": {"patience": None, "keep": "last"}}
TEACHER_ARMS = ("baseline", "regularized", "control")
REFERENCES = ("baseline", "control", "direct")  # what the regularized arm is compared with, in order


@dataclasses.dataclass(frozen=True)
class Config:
    part: str
    regime: str = ""  # "" for the direct arm, which has no teacher
    regularizer: str = "jacobian"
    tuner: str = "constrained"

    @property
    def name(self) -> str:
        return "direct" if not self.regime else f"{self.regime}-{self.regularizer}-{self.tuner}"

    @property
    def path(self) -> Path:
        return OUT / self.part / self.name

    def spec(self) -> sweeps.SweepSpec:
        teacher = {"epochs": EPOCHS, **REGIMES.get(self.regime, {})}
        return sweeps.SweepSpec(
            datasets=PARTS[self.part],
            students=STUDENTS if self.part == "real" else ("operon",),
            seeds=SEEDS,
            arms=TEACHER_ARMS if self.regime else ("direct",),
            regularizer=self.regularizer,
            tuner=self.tuner,
            teacher=teacher,
            student_inputs="scaled" if self.part == "truth" else "standardized",
            drop_terms=False,  # the default until the study ran; its sweeps all keep the terms
        )


def _plan() -> list[Config]:
    """Most informative first: the default regime on real data (the recorded suite's settings,
    now with fronts and 10 seeds), the paper's regime, the same two on ground truth, the
    Lipschitz penalty in the paper's regime, then the paper's grid tuner.

    Cut to keep the study within reach of this machine (measured: a real-data configuration
    takes ~1.5 h of wall time with 2 workers, two thirds of it the control arm's student fits):
    the Lipschitz penalty runs only on converged teachers, the regime the paper proposes it
    for; on early-stopped teachers the Jacobian penalty already left students unchanged. The
    grid tuner (a student per λ, ~1.5x a constrained configuration) runs only for the converged
    Jacobian teacher on real data, the paper's own protocol."""
    parts = ("real", "truth")
    return [
        *(Config(part, regime) for part in parts for regime in ("", "early", "converged")),
        *(Config(part, "converged", "lipschitz") for part in parts),
        Config("real", "converged", tuner="grid"),
    ]


PLAN = _plan()


def run(config: Config, workers: int = 2) -> None:
    spec = config.spec()
    sweeps.prepare(config.path, spec)
    label = f"{config.part}/{config.name}"
    started, units = time.perf_counter(), len(sweeps.pending(config.path, spec))
    print(f"{label}: {units} units to run", flush=True)
    try:
        ran = sweeps.execute(
            spec, config.path, workers=workers, on_done=lambda n: print(f"  {label}: {n}", flush=True)
        )
    except sweeps.UnitsFailed as failure:  # the next configuration still runs; a rerun retries these
        print(f"{label}: {failure}", flush=True)
        return
    print(f"{label}: {ran} trials in {time.perf_counter() - started:.0f} s", flush=True)


def trials_of(config: Config) -> list[dict]:
    """The configuration's trials with its part's direct trials."""
    return [*_loaded(config.path), *_loaded(Config(config.part).path)]


@functools.cache  # the summary reads a folder once, though the A/A pairs and the direct arm reuse it
def _loaded(path: Path) -> tuple[dict, ...]:
    return tuple(loading.load_trials(path)) if any(path.glob("trials/*.json")) else ()


def _block(comparison: dict | None) -> dict | None:
    if comparison is None or comparison["median_delta_r2"] is None:
        return None
    keys = ("median_delta_r2", "median_ci", "mean_delta_r2", "ci", "p_value", "outcome", "wins", "ties",
            "losses", "n_datasets", "n_pairs")  # fmt: skip
    return {key: comparison[key] for key in keys}


def summarize() -> dict:
    rows = []
    for config in (c for c in PLAN if c.regime):
        trials = trials_of(config)
        if not any(t["arm"] == "regularized" for t in trials):
            continue
        agg = stats.aggregate(trials)
        plots.plot_forest(agg, OUT / config.part / f"{config.name}-forest.png")
        for student, block in agg["students"].items():
            rows.append(
                {
                    "part": config.part,
                    "config": config.name,
                    "student": student,
                    "trials": block["n_trials"],
                    **{ref: _block(block[f"vs_{ref}"]) for ref in REFERENCES},
                    "caps": block["caps"],
                    **_tuned(trials, student),
                }
            )
        if agg["ground_truth"]:
            rows.append({"part": config.part, "config": config.name, "ground_truth": agg["ground_truth"]})
    return {
        "seeds": list(SEEDS),
        "epochs": EPOCHS,
        "plan": [c.name for c in PLAN],
        "rows": rows,
        "baseline_pairs": baseline_pairs(),
    }


def _tuned(trials: list[dict], student: str) -> dict:
    """What the tuner chose for the regularized arm: how often each λ, and what it cost the
    teacher (median over datasets of the seed-paired teacher test R², regularized − baseline)."""
    arm = {
        a: [t for t in trials if t["arm"] == a and t["student"] == student]
        for a in ("regularized", "baseline")
    }
    counts = Counter(t["lam"] for t in arm["regularized"] if t.get("lam") is not None)
    return {
        "lam_counts": {f"{lam:g}": n for lam, n in sorted(counts.items())},
        "teacher_median_delta_r2": stats.median_paired_delta(
            arm["regularized"], arm["baseline"], "teacher_r2_test"
        ),
    }


def baseline_pairs() -> list[dict]:
    """A/A comparisons: the λ = 0 baseline of each later configuration against that of the first
    configuration of its part and regime. Both train the same teacher from the same seed; they
    differ only in float32 rounding (the teachers train in stacks of other sizes), so what these
    comparisons call a difference is the students' sensitivity to it, the noise floor of the
    regularized − baseline comparisons."""
    pairs = []
    for config in (c for c in PLAN if c.regime):
        first = next(c for c in PLAN if (c.part, c.regime) == (config.part, config.regime))
        if first == config:
            continue
        runs = [[t for t in trials_of(c) if t["arm"] == "baseline"] for c in (config, first)]
        for student in sorted({t["student"] for t in runs[0]}):
            later, earlier = ([t for t in run if t["student"] == student] for run in runs)
            block = _block(stats.compare(later, earlier))
            if block is not None:
                teacher = stats.median_paired_delta(later, earlier, "teacher_r2_test")
                pairs.append(
                    {
                        "part": config.part,
                        "configs": [config.name, first.name],
                        "student": student,
                        "baseline": block,
                        "teacher_median_delta_r2": teacher,
                    }
                )
    return pairs


def _truth_blocks(summary: dict):
    """(config, student, ground-truth block) for every configuration with generated problems."""
    for row in summary["rows"]:
        for student, block in row.get("ground_truth", {}).get("students", {}).items():
            yield row["config"], student, block


def _equation_rows(summary: dict) -> list[str]:
    lines = []
    for config, student, block in _truth_blocks(summary):
        for entry in block["by_equation"]:
            shown, full = entry["arms"], entry["arms_full_precision"]
            cells = " | ".join(
                f"{shown[arm]['solved']} / {full[arm]['solved']} of {shown[arm]['decided']}"
                if arm in shown
                else "n/a"
                for arm in ("direct", *TEACHER_ARMS)
            )
            equation = entry["equation"].removeprefix("feynman-")
            lines.append(f"| {config} | {student} | {equation} | {cells} |")
    return lines


def _versus(blocks: dict, refs: tuple[str, ...]) -> str:
    """Table cells: the regularized arm against each reference."""
    return " | ".join(_cell(_block(blocks.get(f"vs_{ref}"))) for ref in refs)


def _cell(block: dict | None) -> str:
    if block is None:
        return "n/a"

    def interval(ci):
        return f" [{ci[0]:+.3f}…{ci[1]:+.3f}]" if ci else ""

    return (
        f"{block['median_delta_r2']:+.3f}{interval(block['median_ci'])} "
        f"(mean {block['mean_delta_r2']:+.3f}{interval(block['ci'])}) "
        f"{block['wins']}/{block['ties']}/{block['losses']}"
    )


def _rate(rate: dict) -> str:
    if rate["rate"] is None:
        return "n/a"
    low, high = rate["ci"]
    return f"{rate['solved']} / {rate['decided']}, {rate['rate']:.2f} [{low:.2f}, {high:.2f}]"


def _capped_rows(summary: dict) -> list[str]:
    """At each complexity cap: regularized against baseline and control (test R² of the best
    front member within the cap)."""
    lines = []
    for row in summary["rows"]:
        comparisons = (row.get("caps") or {}).get("comparisons", {})
        for cap, arms in comparisons.items():
            cells = _versus(arms.get("regularized") or {}, ("baseline", "control"))
            lines.append(f"| {row['part']} | {row['config']} | {row['student']} | ≤ {cap} | {cells} |")
    return lines


def _tuner_row(row: dict) -> str:
    counts = ", ".join(f"{lam}: {n}" for lam, n in row["lam_counts"].items())
    teacher = row["teacher_median_delta_r2"]
    cost = "n/a" if teacher is None else f"{teacher:+.4f}"
    return f"| {row['part']} | {row['config']} | {row['student']} | {counts} | {cost} |"


def markdown(summary: dict) -> str:
    lines = [
        "# Smoothness study: where does a smoother teacher help?",
        "",
        "Produced by `python benchmarks/smoothness_study.py`. Each cell: median over data sets of the "
        "per-data-set mean ΔR² (student test R², regularized − reference) with its bootstrap 95 % "
        "interval, the mean over data sets with its own, and wins/ties/losses over data sets "
        f"(Wilcoxon over seeds, α = {stats.ALPHA}). Seeds {', '.join(map(str, summary['seeds']))}; teachers "
        f"{summary['epochs']} epochs at most.",
        "",
        "| part | config | student | trials | vs baseline | vs control | vs direct |",
        "|---|---|---|---|---|---|---|",
    ]
    students = [row for row in summary["rows"] if "student" in row]
    lines += [
        f"| {row['part']} | {row['config']} | {row['student']} | {row['trials']} | "
        + " | ".join(_cell(row[ref]) for ref in REFERENCES)
        + " |"
        for row in students
    ]
    lines += [
        "",
        "## What the tuner chose",
        "",
        "The regularized arm's λ (trials per value) and the teacher test R² it cost: median over data "
        "sets of the seed-paired regularized − baseline difference.",
        "",
        "| part | config | student | λ: trials | teacher ΔR² (median) |",
        "|---|---|---|---|---|",
        *map(_tuner_row, students),
    ]
    capped = _capped_rows(summary)
    if capped:
        lines += ["", "## Under complexity caps", ""]
        lines += ["The best front member of at most that many nodes, regularized − reference.", ""]
        lines += ["| part | config | student | cap | vs baseline | vs control |", "|---" * 6 + "|", *capped]
    if summary["baseline_pairs"]:
        lines += ["", "## Two λ = 0 baselines (A/A)", ""]
        lines += [
            "The same λ = 0 teacher and seed in two configurations, apart only in float32 rounding "
            "(stacks of other sizes): what the comparisons above would report with no penalty at all.",
            "",
            "| part | baseline of | against baseline of | student | ΔR² | teacher ΔR² (median) |",
            "|---|---|---|---|---|---|",
        ]
        for pair in summary["baseline_pairs"]:
            later, earlier = pair["configs"]
            lines.append(
                f"| {pair['part']} | {later} | {earlier} | {pair['student']} | {_cell(pair['baseline'])} "
                f"| {pair['teacher_median_delta_r2']:+.1e} |"
            )
    if any(_truth_blocks(summary)):
        lines += _truth_section(summary)
    return "\n".join(lines) + "\n"


def _truth_section(summary: dict) -> list[str]:
    blocks = list(_truth_blocks(summary))
    return [
        "",
        "## Symbolic solution rate (ground-truth problems)",
        "",
        "The formula shown (constants rounded as far as validation R² allows) and the same "
        "formula with its constants as fitted; solved / decided, rate [Wilson 95 % interval].",
        "",
        "| config | student | arm | shown | full precision |",
        "|---|---|---|---|---|",
        *(
            f"| {config} | {student} | {arm} | {_rate(rate)} | "
            f"{_rate(block['solution_rate_full_precision'][arm])} |"
            for config, student, block in blocks
            for arm, rate in block["solution_rate"].items()
        ),
        "",
        "Student test R² against the noiseless target, regularized − reference, cells as in the first table.",
        "",
        "| config | student | vs baseline | vs control | vs direct |",
        "|---|---|---|---|---|",
        *(
            f"| {config} | {student} | {_versus(block['comparisons'].get('regularized', {}), REFERENCES)} |"
            for config, student, block in blocks
        ),
        "",
        "Per equation (its 3 noise levels × 2 sizes × seeds): solved as shown / in full precision, "
        "of the trials decided.",
        "",
        "| config | student | equation | direct | " + " | ".join(TEACHER_ARMS) + " |",
        "|---" * 7 + "|",
        *_equation_rows(summary),
    ]


def write_summary() -> None:
    summary = summarize()
    storage.write_json(OUT / "summary.json", summary)
    storage.write_text(OUT / "summary.md", markdown(summary))


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--summary" not in args:
        wanted = [c for c in PLAN if not args or f"{c.part}/{c.name}" in args]
        for config in wanted:
            run(config)
            write_summary()
    write_summary()
    print((OUT / "summary.md").read_text())
