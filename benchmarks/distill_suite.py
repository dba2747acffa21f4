"""The recorded distillation suite: every bundled dataset (smallest first), students operon,
gplearn and tree, seeds 0–4, all five arms, the default (constrained) tuner.

Resumable: rerunning continues where the last run stopped. Then ``jacdistill report
benchmarks/results/distill_suite`` writes the report beside the trials.
"""

import sys
from pathlib import Path

DATASETS = (
    "servo,machine_cpu,yacht,auto_mpg,real_estate,esl,energy_heating,energy_cooling,"
    "concrete,airfoil,wine_red,ccpp"
)
ARGS = [
    "sweep",
    "--datasets",
    DATASETS,
    "--students",
    "operon,gplearn,tree",
    "--seeds",
    "0,1,2,3,4",
    "--keep-terms",  # as recorded: the suite ran before small terms were left out by default
    "--out",
    str(Path(__file__).resolve().parent / "results" / "distill_suite"),
]

if __name__ == "__main__":
    from jacdistill.cli import cli

    cli([*ARGS, *sys.argv[1:]])
