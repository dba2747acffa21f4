"""The ``jacdistill`` command line: a thin layer over :mod:`jacdistill.pipeline` and the registry."""
from __future__ import annotations

import json
import sys
import time
import warnings

import click

from jacdistill import __version__
from jacdistill.options import JacdistillError, parse_key_values

DEFAULT_DATASET = "airfoil"


class Jacdistill(click.Group):
    """Every user error (bad option, bad data, unknown plugin) is one line on stderr and exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        warnings.showwarning = lambda message, *_, **__: click.echo(f"warning: {message}", err=True)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except JacdistillError as exc:
            fail(str(exc), 2)
        except (KeyboardInterrupt, click.exceptions.Abort):
            fail("interrupted; finished files are kept", 130)
        sys.exit(0)


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message.strip().splitlines()[0] if message.strip() else 'failed'}", err=True)
    sys.exit(code)


@click.group(cls=Jacdistill)
@click.version_option(__version__, prog_name="jacdistill")
def cli():
    """Distil a neural network into a formula a person can read."""


def parse_widths(ctx, param, value: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in value.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise click.BadParameter(f"expects comma-separated positive integers such as 64,64, got '{value}'")
    return widths


def parse_lam(ctx, param, value: str | None) -> float | str | None:
    if value is None or value == "auto":
        return value
    try:
        lam = float(value)
    except ValueError:
        raise click.BadParameter(f"expects 'auto' or a number >= 0, got '{value}'") from None
    if not lam >= 0 or lam == float("inf"):
        raise click.BadParameter(f"expects a finite number >= 0, got '{value}'")
    return lam


class Bars:
    """tqdm bars for teacher epochs and student fits, on stderr, only when it is a terminal."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm
        if self.bar is None or self.bar.desc != stage or done <= self.bar.n:  # a new fit began
            self.close()
            self.bar = tqdm(total=total, desc=stage, unit="epoch" if stage == "teacher" else "fit",
                            leave=False, file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


PROBLEM_OPTIONS = [  # what defines one distillation problem; shared by run and tune
    click.option("--dataset", help=f"Bundled dataset (see `jacdistill datasets`); default {DEFAULT_DATASET}."),
    click.option("--data", type=click.Path(dir_okay=False), help="CSV or Parquet file of your own."),
    click.option("--target", help="Target column (default: the last column)."),
    click.option("--regularizer", default="jacobian", show_default=True, help="Smoothness penalty plugin."),
    click.option("--reg-opt", multiple=True, metavar="KEY=VALUE", help="Option for the regularizer."),
    click.option("--backend", help="Regularizer backend, e.g. auto, autograd, analytic (jacobian)."),
    click.option("--reg-every", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Apply the penalty every K steps with weight K·λ."),
    click.option("--tuner", default="constrained", show_default=True, help="λ tuner plugin."),
    click.option("--tuner-opt", multiple=True, metavar="KEY=VALUE", help="Option for the tuner."),
    click.option("--student", default="operon", show_default=True, help="Student plugin."),
    click.option("--student-opt", multiple=True, metavar="KEY=VALUE", help="Option for the student."),
    click.option("--widths", default="64,64", show_default=True, callback=parse_widths,
                 help="Hidden layer widths of the teacher MLP."),
    click.option("--activation", type=click.Choice(["silu", "tanh", "relu"]), default="silu",
                 show_default=True),
    click.option("--epochs", type=click.IntRange(min=1), default=500, show_default=True,
                 help="Maximum teacher epochs (early stopping on validation MSE)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True),
    click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True),
    click.option("--patience", type=click.IntRange(min=1), default=40, show_default=True),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--device", default="cpu", show_default=True, help="cpu, or cuda when available."),
    click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Torch CPU threads: one is as fast for small MLPs and robust on a busy machine."),
    click.option("--out", type=click.Path(file_okay=False), help="Run directory (default runs/<time>-…)."),
]


def problem_options(command):
    for option in reversed(PROBLEM_OPTIONS):
        command = option(command)
    return command


def load_problem(dataset, data, target, lam, opts):
    """(table, Distiller parameters, resolved plugin options) from the shared options; fails on a
    bad file, plugin or option before any training."""
    import torch

    from jacdistill.data import load_bundled, load_file
    from jacdistill.estimator import Distiller

    torch.set_num_threads(opts.pop("threads"))

    if dataset is not None and data is not None:
        raise JacdistillError("give either --dataset or --data, not both")
    table = load_file(data, target) if data is not None else load_bundled(
        DEFAULT_DATASET if dataset is None else dataset)
    if target is not None and data is None and target != table.target_name:
        raise JacdistillError(f"bundled dataset '{table.name}' has target '{table.target_name}'; "
                              f"--target applies to --data files")
    reg_options = parse_key_values(opts["reg_opt"], "--reg-opt")
    if opts["backend"] is not None:
        reg_options["backend"] = opts["backend"]
    params = dict(regularizer=opts["regularizer"], lam=0.0 if opts["regularizer"] == "none" else lam,
                  regularizer_options=reg_options, reg_every=opts["reg_every"], tuner=opts["tuner"],
                  tuner_options=parse_key_values(opts["tuner_opt"], "--tuner-opt"),
                  student=opts["student"], student_options=parse_key_values(opts["student_opt"], "--student-opt"),
                  **{k: opts[k] for k in ("widths", "activation", "epochs", "batch_size", "lr",
                                          "patience", "device", "seed")})
    penalty, student_options, _, tuner = Distiller(**params).resolve_plugins()
    resolved = {"regularizer": penalty.options, "student": student_options,
                "tuner": tuner.options if tuner else None}
    return table, params, resolved


def start_run_dir(command, table, params, resolved, out, **settings):
    import torch

    from jacdistill import pipeline, provenance

    return pipeline.prepare_run_dir(out or pipeline.default_run_dir(table, params, command), {
        "command": command, "torch_threads": torch.get_num_threads(), "dataset": table.name, "target": table.target_name,
        "features": table.feature_names, **settings, **params, "resolved_options": resolved,
        "split": {"train": 0.70, "val": 0.15, "test": 0.15}, "versions": provenance.package_versions()})


@cli.command()
@problem_options
@click.option("--lam", default="auto", show_default=True, callback=parse_lam,
              help="Penalty weight λ, or auto: chosen by --tuner on the validation rows.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json to stdout.")
@click.option("--no-baseline", is_flag=True, help="Skip the λ = 0 baseline fit.")
def run(dataset, data, target, lam, out, as_json, no_baseline, **opts):
    """Train a smooth teacher, distil it into a formula, compare with the λ = 0 baseline."""
    from jacdistill import pipeline

    table, params, resolved = load_problem(dataset, data, target, lam, opts)
    run_dir = start_run_dir("run", table, params, resolved, out, data_file=data, baseline=not no_baseline)
    bars = Bars(enabled=not as_json and sys.stderr.isatty())
    started = time.perf_counter()
    try:
        main, base = pipeline.run(table, params, baseline=not no_baseline, progress=bars, workdir=run_dir)
    finally:
        bars.close()
    pipeline.write_run(run_dir, table, main, base)
    if as_json:
        click.echo((run_dir / "metrics.json").read_text(), nl=False)
    else:
        click.echo(summary(table, main, base, run_dir, time.perf_counter() - started))


@cli.command()
@problem_options
@click.option("--json", "as_json", is_flag=True, help="Print the tuning report as JSON.")
def tune(dataset, data, target, out, as_json, **opts):
    """Choose λ with a tuner and report every trial, the compute spent and a plot of R² against λ."""
    from jacdistill import pipeline

    table, params, resolved = load_problem(dataset, data, target, "auto", opts)
    run_dir = start_run_dir("tune", table, params, resolved, out, data_file=data)
    bars = Bars(enabled=not as_json and sys.stderr.isatty())
    try:
        report = pipeline.tune(table, params, progress=bars, workdir=run_dir)
    finally:
        bars.close()
    pipeline.write_tuning(run_dir, report)
    if as_json:
        click.echo((run_dir / "tuning.json").read_text(), nl=False)
        return
    rows = [(f"{t['lam']:.3g}", fmt(t["teacher_r2_val"]), fmt(t["teacher_r2_test"]),
             fmt(t["student_r2_val"]), f"{t['seconds']:.1f}") for t in report["trials"]]
    click.echo(f"{table.name}: tuner {report['tuner']} chose λ = {report['lam']:.4g}")
    click.echo(f"{'λ':>10} {'teacher val R²':>15} {'teacher test R²':>16} {'student val R²':>15} {'seconds':>8}")
    for row in rows:
        click.echo(f"{row[0]:>10} {row[1]:>15} {row[2]:>16} {row[3]:>15} {row[4]:>8}")
    compute = report["compute"]
    click.echo(f"chosen: student test R² {fmt(report['student_r2_test'])}, teacher test R² "
               f"{fmt(report['teacher_r2_test'])}; compute: {compute['teacher_trainings']} teacher "
               f"trainings, {compute['student_fits']} student fits, {compute['seconds']:.1f} s")
    click.echo(f"run dir   {run_dir}")


def fmt(value, digits: int = 4) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def summary(table, main, base, run_dir, seconds: float) -> str:
    from jacdistill import formula

    est, m = main.estimator, main.metrics
    arch = "-".join(str(w) for w in (len(table.feature_names), *est.widths, 1))
    separate_base = base is not None and base is not main  # at λ = 0 the run is its own baseline
    title = f"{m['regularizer']} λ={m['lam']:.3g}" + (f" ({m['tuner']})" if m["tuner"] else "")
    columns = [(title, m)] + ([("baseline λ=0", base.metrics)] if separate_base else [])
    rows = [("teacher test R²", "teacher_r2_test"), ("student test R²", "student_r2_test"),
            ("fidelity R²", "fidelity_r2_test"), ("complexity", "complexity")]
    show = lambda v: str(v) if isinstance(v, int) else fmt(v)
    lines = [f"{table.name}: MLP {arch} {est.activation} teacher, {m['student']} student, seed {m['seed']}",
             f"{'':20}" + "".join(f"{title:>22}" for title, _ in columns)]
    lines += [f"{label:20}" + "".join(f"{show(c[key]):>22}" for _, c in columns) for label, key in rows]
    lines.append(f"formula   {formula.as_text(est.formula_, table.target_name, digits=4)}")
    if separate_base:
        lines.append(f"baseline  {formula.as_text(base.estimator.formula_, table.target_name, digits=4)}")
    lines.append(f"run dir   {run_dir}")
    lines.append(f"time      {seconds:.1f} s")
    return "\n".join(lines)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def plugins(as_json):
    """List regularizers, students and tuners, where they come from and whether they run here."""
    from jacdistill.registry import registry

    rows = [info.as_dict() for info in registry().all()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'kind':12} {'name':12} {'source':20} available")
    for row in rows:
        status = "yes" if row["available"] else f"no: {row['reason']}"
        click.echo(f"{row['kind']:12} {row['name']:12} {row['source']:20} {status}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def datasets(as_json):
    """List the bundled datasets with their sizes."""
    from jacdistill.data import bundled_datasets

    rows = [{k: row[k] for k in ("name", "rows", "features", "target", "original_source", "license_note")}
            for row in bundled_datasets()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':16} {'rows':>6} {'features':>8}  target")
    for row in rows:
        click.echo(f"{row['name']:16} {row['rows']:>6} {row['features']:>8}  {row['target']}")


def split_list(value: str | None, cast=str) -> tuple | None:
    if value is None:
        return None
    try:
        return tuple(cast(item.strip()) for item in value.split(",") if item.strip())
    except ValueError:
        raise JacdistillError(f"expected a comma-separated list, got '{value}'") from None


@cli.command()
@click.option("--config", type=click.Path(dir_okay=False), help="TOML file describing the grid; flags override it.")
@click.option("--datasets", help="Comma-separated bundled datasets (default: all).")
@click.option("--students", help="Comma-separated students (default: operon,gplearn,tree).")
@click.option("--seeds", help="Comma-separated seeds (default: 0,1,2,3,4).")
@click.option("--arms", help="Comma-separated arms (default: direct,baseline,regularized,augmented,control).")
@click.option("--regularizer", help="Smoothness penalty plugin (default: jacobian).")
@click.option("--tuner", help="λ tuner for the regularized arms (default: constrained).")
@click.option("--lam", callback=parse_lam, help="Fixed λ for the regularized arms instead of tuning (default: auto).")
@click.option("--tuner-opt", multiple=True, metavar="KEY=VALUE", help="Option for the tuner.")
@click.option("--student-opt", multiple=True, metavar="STUDENT.KEY=VALUE",
              help="Option for one student, e.g. operon.generations=50.")
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum teacher epochs.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: start a LocalCluster).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Sweep directory; rerunning with the same one resumes.")
def sweep(config, datasets, students, seeds, arms, regularizer, tuner, lam, tuner_opt, student_opt, epochs,
          executor, scheduler, workers, out):
    """Run a resumable grid of distillation trials: datasets × students × arms × seeds."""
    import tomllib
    from pathlib import Path

    from jacdistill import sweep as sweeps
    from jacdistill.data import bundled_datasets

    settings = {}
    if config:
        try:
            settings = tomllib.loads(Path(config).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise JacdistillError(f"cannot read config {config}: {exc}") from None
    flags = {"datasets": split_list(datasets), "students": split_list(students),
             "seeds": split_list(seeds, int), "arms": split_list(arms), "regularizer": regularizer,
             "tuner": tuner, "lam": lam}
    settings.update({k: v for k, v in flags.items() if v is not None})
    settings.setdefault("datasets", tuple(row["name"] for row in bundled_datasets()))
    settings.setdefault("students", ("operon", "gplearn", "tree"))
    settings.setdefault("seeds", (0, 1, 2, 3, 4))
    settings["tuner_options"] = {**settings.get("tuner_options", {}), **parse_key_values(tuner_opt, "--tuner-opt")}
    per_student = {name: dict(opts) for name, opts in settings.get("student_options", {}).items()}
    for key, value in parse_key_values(student_opt, "--student-opt").items():
        name, dot, option = key.partition(".")
        if not dot:
            raise JacdistillError(f"--student-opt expects STUDENT.KEY=VALUE, got '{key}={value}'")
        per_student.setdefault(name, {})[option] = value
    settings["student_options"] = per_student
    if epochs is not None:
        settings["teacher"] = {**settings.get("teacher", {}), "epochs": epochs}
    spec = sweeps.SweepSpec.from_settings(settings)
    check_sweep(spec)
    sweeps.prepare(Path(out), spec)
    todo = sum(not sweeps.trial_path(Path(out), d, s, arm, seed).exists()
               for d, s, seed in spec.units() for arm in spec.arms)
    total = len(spec.units()) * len(spec.arms)
    started = time.perf_counter()
    from tqdm import tqdm
    with tqdm(total=total, initial=total - todo, desc="trials", unit="trial", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        ran = sweeps.execute(spec, Path(out), executor, workers, scheduler,
                             on_done=lambda n: bar.update(total - todo + n - bar.n))
    click.echo(f"sweep: {ran} trials run, {total - todo} already finished, {total} in all, "
               f"{time.perf_counter() - started:.0f} s; report: jacdistill report {out}")


def check_sweep(spec) -> None:
    """Fail on an unknown dataset, plugin or option before any worker starts."""
    from jacdistill.data import bundled_datasets
    from jacdistill.estimator import Distiller

    known = {row["name"] for row in bundled_datasets()}
    for name in spec.datasets:
        if name not in known:
            raise JacdistillError(f"unknown dataset '{name}'; bundled: {', '.join(sorted(known))}")
    for student in spec.students:
        Distiller(**spec.params(student, 0, lam=spec.lam, augment=spec.augment, jitter=spec.jitter)).resolve_plugins()


@cli.command()
@click.argument("sweep_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the aggregates as JSON.")
def report(sweep_dir, as_json):
    """Summarize a sweep: Markdown report and plots in SWEEP_DIR, or the aggregates as JSON."""
    from jacdistill import report as reports, storage

    if as_json:
        click.echo(storage.to_json(reports.report_json(sweep_dir)))
        return
    click.echo(f"report written to {reports.write_report(sweep_dir)}")


@cli.group()
def bench():
    """Measure speed: results go to benchmarks/results/ with machine and versions."""


@bench.command("step")
@click.option("--rounds", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed rounds per cell (the median is reported).")
@click.option("--repeats", type=click.IntRange(min=8), default=24, show_default=True,
              help="Steps per cell and round.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="benchmarks/results", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def bench_step(rounds, repeats, device, out, as_json):
    """Per-step time of each penalty and backend divided by a plain MSE step."""
    from jacdistill.benchmarks import harness, step_overhead

    rows = step_overhead.measure(rounds, repeats, device=device)
    settings = {"rounds": rounds, "repeats": repeats, "lam": step_overhead.LAM}
    path = harness.save("step_overhead", rows, settings, device, out)
    if as_json:
        click.echo(json.dumps({"rows": rows, "settings": settings, "file": str(path)}, indent=2))
    else:
        click.echo(harness.table(rows, step_overhead.COLUMNS))
        click.echo(f"written to {path}")


@bench.command("kernel")
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True,
              help="Batch size (repeatable; default 1024, 16384, 262144).")
@click.option("--net", "nets", multiple=True, help="MLP as d-w1-…-k, e.g. 16-64-64-1 (repeatable).")
@click.option("--interpret", is_flag=True, help="Triton's CPU interpreter on a tiny grid: a correctness run.")
@click.option("--out", type=click.Path(file_okay=False), default="benchmarks/results", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print device and rows as JSON.")
def bench_kernel(batches, nets, interpret, out, as_json):
    """The fused Triton kernel against eager double backward, vmap(jacrev), the analytic torch path
    and torch.compile of it: forward and forward+backward times, speedups, errors (needs a GPU)."""
    import torch

    if not interpret and not torch.cuda.is_available():
        raise JacdistillError("bench kernel needs a CUDA GPU, and none is available here; "
                              "--interpret runs a tiny correctness check on the CPU instead")
    from jacdistill.benchmarks import harness, kernel_jacnorm

    device = "cpu" if interpret else "cuda"
    rows = kernel_jacnorm.measure(list(batches) or None, list(nets) or None, device, interpret=interpret)
    settings = kernel_jacnorm.settings(interpret)
    path = harness.save("kernel_jacnorm", rows, settings, device, out)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu (triton interpreter)"
    if as_json:
        click.echo(json.dumps({"device": name, "rows": rows, "settings": settings, "file": str(path)}, indent=2))
    else:
        click.echo(f"device: {name}")
        click.echo(harness.table(rows, kernel_jacnorm.COLUMNS))
        click.echo(f"written to {path}")


@bench.command("tuners")
@click.option("--datasets", default=None, help="Comma-separated bundled datasets (default: four).")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--out", type=click.Path(file_okay=False), default="benchmarks/results", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print rows and summary as JSON.")
def bench_tuners(datasets, seeds, out, as_json):
    """λ tuners against the grid: chosen λ, student test R², wall time (CPU; takes a while)."""
    from jacdistill.benchmarks import harness, tuners

    names, seed_list = split_list(datasets) or tuners.DATASETS, split_list(seeds, int)
    rows = tuners.measure(names, seed_list, log=lambda line: click.echo(line, err=True))
    summary = tuners.summarize(rows)
    settings = {"datasets": names, "seeds": seed_list, "tuners": tuners.TUNERS, "student": tuners.STUDENT,
                "fixed_lam": tuners.FIXED_LAM}
    path = harness.save("tuners", rows, settings, "cpu", out, summary=summary)
    if as_json:
        click.echo(json.dumps({"rows": rows, "summary": summary, "file": str(path)}, indent=2))
    else:
        click.echo(harness.table(summary, tuners.COLUMNS))
        click.echo(f"written to {path}")


def main():
    cli()
