"""``jacdistill bench``: the benchmarks as a command group, added through the plugin hook.

A plugin module like any other (the ``bench`` entry point of the ``jacdistill`` group), so the
core command line never imports ``jacdistill.benchmarks``. The measuring modules load only when a
command runs. A results file is written only into the folder ``--out`` names; the standalone
scripts (``python benchmarks/<name>.py``) pass ``--out`` = this folder's ``results/``.
"""

from __future__ import annotations

import json

import click

from jacdistill.hookspecs import hookimpl
from jacdistill.options import JacdistillError

OUT_HELP = (
    "Folder for the results file (<benchmark>-<device>.json, with machine and versions); "
    "without --out the table is printed and nothing is written."
)


def out_option(command):
    return click.option("--out", type=click.Path(file_okay=False), metavar="DIR", help=OUT_HELP)(command)


def save(name: str, rows: list[dict], settings: dict, device: str, out: str | None, **extra) -> str | None:
    """The results file written into ``out``; None without ``--out``."""
    if out is None:
        return None
    from jacdistill.benchmarks import harness

    return str(harness.save(name, rows, settings, device, out, **extra))


def show(as_json: bool, payload: dict, text: str) -> None:
    """Print ``payload`` as JSON, or ``text`` and where the results file went (``payload["file"]``)."""
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(text)
        saved(payload["file"])


def saved(path: str | None) -> None:
    if path is None:
        click.echo("not written: pass --out DIR to keep the results", err=True)
    else:
        click.echo(f"written to {path}")


def check_device(ctx, param, value: str) -> str:
    """A device a benchmark can run on here: cpu, or cuda / cuda:N of a GPU present."""
    from jacdistill.estimator import device_problem

    problem = device_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def parse_nets(ctx, param, values: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """``--net 16-64-64-1`` -> (16, 64, 64, 1), checked before anything is measured."""
    nets = []
    for text in values:
        try:
            sizes = tuple(int(v) for v in text.split("-"))
        except ValueError:
            sizes = ()
        if len(sizes) < 3 or min(sizes) < 1 or max(sizes) > 2**16:
            raise click.BadParameter(
                f"expects d-w1-…-k, positive sizes up to 65536 with at least one hidden width, "
                f"e.g. 16-64-64-1; got '{text}'"
            )
        nets.append(sizes)
    return tuple(nets)


def check_seeds(text: str | None) -> tuple[int, ...] | None:
    from jacdistill.cli import split_list

    seeds = split_list(text, int)
    if seeds is None:
        return None
    if not seeds:
        raise JacdistillError(f"--seeds expects at least one seed, got '{text}'")
    for i, seed in enumerate(seeds):
        if not 0 <= seed <= 2**31 - 1:
            raise JacdistillError(f"--seeds: {seed} is not in [0, {2**31 - 1}]")
        if seed in seeds[:i]:
            raise JacdistillError(f"--seeds lists {seed} twice; give each once")
    return seeds


@click.group()
def bench():
    """Measure speed; with --out DIR the results go to a JSON file there, with machine and versions."""


@bench.command("step")
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Timed rounds per cell (the median is reported).",
)
@click.option(
    "--repeats", type=click.IntRange(min=8), default=24, show_default=True, help="Steps per cell and round."
)
@click.option("--device", default="cpu", show_default=True, callback=check_device)
@out_option
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def bench_step(rounds, repeats, device, out, as_json):
    """Per-step time of each penalty and backend divided by a plain MSE step."""
    from jacdistill.benchmarks import step_overhead
    from jacdistill.tables import markdown_table

    rows = step_overhead.measure(rounds, repeats, device=device)
    settings = {"rounds": rounds, "repeats": repeats, "lam": step_overhead.LAM}
    path = save("step_overhead", rows, settings, device, out)
    show(
        as_json,
        {"rows": rows, "settings": settings, "file": path},
        markdown_table(rows, step_overhead.COLUMNS),
    )


@bench.command("kernel")
@click.option(
    "--batch",
    "batches",
    type=click.IntRange(min=1),
    multiple=True,
    help="Batch size (repeatable; default 1024, 16384, 262144).",
)
@click.option(
    "--net",
    "nets",
    multiple=True,
    callback=parse_nets,
    help="MLP as d-w1-…-k, e.g. 16-64-64-1 (repeatable).",
)
@click.option("--interpret", is_flag=True, help="Triton's CPU interpreter on a tiny grid: a correctness run.")
@out_option
@click.option("--json", "as_json", is_flag=True, help="Print device and rows as JSON.")
def bench_kernel(batches, nets, interpret, out, as_json):
    """The fused Triton kernel against eager double backward, vmap(jacrev), the analytic torch path
    and torch.compile of it: forward and forward+backward times, speedups, errors (needs a GPU)."""
    import torch

    if not interpret and not torch.cuda.is_available():
        raise JacdistillError(
            "bench kernel needs a CUDA GPU, and none is available here; "
            "--interpret runs a tiny correctness check on the CPU instead"
        )
    from jacdistill.benchmarks import kernel_jacnorm
    from jacdistill.tables import markdown_table

    device = "cpu" if interpret else "cuda"
    rows = kernel_jacnorm.measure(list(batches) or None, list(nets) or None, device, interpret=interpret)
    settings = kernel_jacnorm.settings(interpret)
    path = save("kernel_jacnorm", rows, settings, device, out)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu (triton interpreter)"
    payload = {"device": name, "rows": rows, "settings": settings, "file": path}
    show(as_json, payload, f"device: {name}\n{markdown_table(rows, kernel_jacnorm.COLUMNS)}")


@bench.command("tuners")
@click.option("--datasets", default=None, help="Comma-separated bundled datasets (default: four).")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@out_option
@click.option("--json", "as_json", is_flag=True, help="Print rows and summary as JSON.")
def bench_tuners(datasets, seeds, out, as_json):
    """λ tuners against the grid: chosen λ, student test R², wall time (CPU; takes a while)."""
    from jacdistill.benchmarks import tuners
    from jacdistill.cli import split_list
    from jacdistill.data import bundled_entry
    from jacdistill.tables import markdown_table

    names, seed_list = split_list(datasets) or tuners.DATASETS, check_seeds(seeds)
    for i, name in enumerate(names):
        bundled_entry(name)
        if name in names[:i]:
            raise JacdistillError(f"--datasets lists '{name}' twice; give each once")
    rows = tuners.measure(names, seed_list, log=lambda line: click.echo(line, err=True))
    summary = tuners.summarize(rows)
    settings = {
        "datasets": names,
        "seeds": seed_list,
        "tuners": tuners.TUNERS,
        "student": tuners.STUDENT,
        "fixed_lam": tuners.FIXED_LAM,
    }
    path = save("tuners", rows, settings, "cpu", out, summary=summary)
    show(as_json, {"rows": rows, "summary": summary, "file": path}, markdown_table(summary, tuners.COLUMNS))


@bench.command("e2e")
@click.option("--quick", is_flag=True, help="A smoke run of about a minute: tiny epochs, students and sizes.")
@click.option(
    "--budget",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds for the whole benchmark; row sizes that would not fit are skipped "
    "[default: 540, --quick 120].",
)
@out_option
@click.option("--json", "as_json", is_flag=True, help="Print rows and summary as JSON.")
def bench_e2e(quick, budget, out, as_json):
    """End-to-end wall time, batched against sequential teachers: an 8-λ grid against one teacher,
    a default run, each tuner, a sweep unit and growth with rows (CPU; about 9 minutes)."""
    import dataclasses
    from pathlib import Path

    from jacdistill.benchmarks import e2e
    from jacdistill.tables import markdown_table

    plan = e2e.QUICK if quick else e2e.FULL
    if budget is not None:
        plan = dataclasses.replace(plan, budget=budget)
    rows, summary = e2e.measure(plan, log=lambda line: click.echo(line, err=True))
    path = save("e2e", rows, e2e.settings(plan), "cpu", out, summary=summary)
    if out is not None:
        e2e.plot(rows, Path(out) / "e2e-rows.png")
    text = [markdown_table(rows, e2e.COLUMNS), "", markdown_table(e2e.ratio_rows(summary), e2e.RATIO_COLUMNS)]
    text += [f"benchmark time: {summary['seconds']:.0f} s", *(f"FLAG: {flag}" for flag in summary["flags"])]
    show(as_json, {"rows": rows, "summary": summary, "file": path}, "\n".join(text))


@hookimpl
def register_commands(cli):
    cli.add_command(bench)


def run_standalone(command: str, argv: list[str]) -> None:
    """``python benchmarks/<name>.py [OPTIONS]``: ``jacdistill bench <command>`` writing into this
    folder's ``results/`` (an ``--out`` in ``argv`` still wins)."""
    from jacdistill.benchmarks import harness
    from jacdistill.cli import cli

    cli(["bench", command, "--out", str(harness.RESULTS_DIR), *argv])
