"""The ``jacdistill`` command line: a thin layer over :mod:`jacdistill.pipeline` and the registry."""

from __future__ import annotations

import functools
import json
import math
import sys
import time
import warnings

import click

from jacdistill import __version__
from jacdistill.options import STUDENT_INPUTS, JacdistillError, parse_key_values
from jacdistill.trials import ARMS, DEFAULT_SEEDS, DEFAULT_STUDENTS

DEFAULT_DATASET = "airfoil"


class Jacdistill(click.Group):
    """Every user error (bad option, bad data, unknown plugin) is one line on stderr and exit 2.

    Plugins' commands (the ``register_commands`` hook) are added the first time a command name is
    not a built-in one: loading plugins imports torch and more, which ``--help`` need not pay for.
    """

    plugin_commands_added = False

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is None and not self.plugin_commands_added:
            self.add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def add_plugin_commands(self) -> None:
        from jacdistill.registry import registry

        self.plugin_commands_added = True
        registry().add_commands(self)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """The one error boundary: a user error (bad option or value, unusable file, directory,
        network address, database or plugin, too little memory) is one line naming what and where,
        exit 2; an unexpected internal error is one line with the path of a log file holding the
        traceback, exit 1; Ctrl-C is exit 130. ``--debug`` also prints the traceback."""
        warnings.showwarning = lambda message, *_, **__: click.echo(f"warning: {message}", err=True)
        argv = sys.argv[1:] if args is None else list(args)
        debug = "--debug" in next((argv[:i] for i, a in enumerate(argv) if not a.startswith("-")), argv)
        try:
            super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort):
            fail("interrupted; finished files are kept", 130)
        except Exception as exc:  # noqa: BLE001 - the boundary: every failure becomes one line
            if debug:
                import traceback

                traceback.print_exc()
            expected = user_error(exc)
            if expected is not None:
                fail(expected, 2)
            fail(f"internal error ({internal_summary(exc)}); {log_traceback(exc, argv)}", 1)
        sys.exit(0)


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message.strip().splitlines()[0] if message.strip() else 'failed'}", err=True)
    sys.exit(code)


ALLOCATION_FAILURES = ("can't allocate memory", "out of memory", "failed to allocate")  # torch's words


def user_error(exc: BaseException) -> str | None:
    """The one-line message of an expected failure (the user can fix it: exit 2), or None for an
    internal error."""
    if isinstance(exc, JacdistillError):
        return str(exc)
    name, module = type(exc).__name__, type(exc).__module__
    first = (str(exc).strip().splitlines() or [""])[0]
    allocation = isinstance(exc, RuntimeError) and any(s in first.lower() for s in ALLOCATION_FAILURES)
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or allocation:
        return (
            f"out of memory ({name}{': ' + first[:200] if first else ''}); "
            f"try smaller --widths, --batch-size or data"
        )
    if isinstance(exc, OSError):  # file system (permissions, disk full, read-only) and network
        what = exc.strerror or first or name
        where = exc.filename if exc.filename is not None else traceback_path(exc)
        if where is not None:
            what += f": {where}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
        return f"{what} ({name})"
    if module.startswith("sqlalchemy") or module.startswith("optuna"):  # a tuner's storage=URL
        return f"{module.split('.')[0]} ({name}): {first}"
    if module.startswith("pluggy"):
        return f"plugin error ({name}): {first}"
    return None


def traceback_path(exc: BaseException) -> str | None:
    """The file an OSError without a file name was about: the innermost ``path`` being handled."""
    from pathlib import PurePath

    tb, found = exc.__traceback__, None
    while tb is not None:
        value = tb.tb_frame.f_locals.get("path")
        if isinstance(value, (str, PurePath)) and str(value):
            found = str(value)
        tb = tb.tb_next
    return found


def internal_summary(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def log_traceback(exc: BaseException, argv: list[str]) -> str:
    """Write the traceback to ``jacdistill-error-<time>.log`` in the temp dir; say where."""
    import datetime as dt
    import platform
    import tempfile
    import traceback
    from pathlib import Path

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (
        f"jacdistill {__version__}, Python {platform.python_version()}, {platform.platform()}\n"
        f"command: jacdistill {' '.join(argv)}\n\n" + "".join(traceback.format_exception(exc))
    )
    try:
        fd, name = tempfile.mkstemp(prefix=f"jacdistill-error-{stamp}-", suffix=".log", text=True)
        with open(fd, "w") as fh:
            fh.write(text)
    except OSError as err:
        return f"could not write the traceback to a log ({err.strerror}); rerun with --debug to see it"
    return f"traceback in {Path(name)} (please report it; --debug shows it here)"


@click.group(
    cls=Jacdistill,
    epilog="Plugins can add more commands, loaded when named: jacdistill's "
    "own add 'bench' (see 'jacdistill bench --help').",
)
@click.version_option(__version__, prog_name="jacdistill")
@click.option(
    "--debug",
    is_flag=True,
    help="Print the traceback of any failure (otherwise: one line; an internal error's "
    "traceback goes to a log file in the temp folder).",
)
def cli(debug):
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


class FiniteFloat(click.FloatRange):
    """A float range that refuses nan and ±inf (click's own lets nan through every bound)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"expects a finite number, got '{value}'", param, ctx)
        return number


class Patience(click.ParamType):
    """An integer >= 1, or ``none`` (None: the teacher never stops early)."""

    name = "patience"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value  # the Distiller's default
        if str(value).strip().lower() == "none":
            return None
        try:
            number = int(str(value).strip())
        except ValueError:
            number = 0
        if number < 1:
            self.fail(f"expects an integer >= 1 or 'none', got '{value}'", param, ctx)
        return number


KEEP = ("best", "last")  # as teacher.KEEP (read here without loading torch)


def parse_device(ctx, param, value: str) -> str:
    """Only cpu, cuda and cuda:N (checked here without loading torch; whether that GPU exists is
    checked with the other settings, by ``Distiller.resolve_plugins``)."""
    import re

    if not re.fullmatch(r"cpu(:0)?|cuda(:\d+)?", value):
        raise click.BadParameter(f"device '{value}' is not supported; use cpu, cuda or cuda:N")
    return value


MAX_SEED = 2**31 - 1  # as Distiller.parameter_constraints["seed"]: see the --seed help
MAX_THREADS = 1024  # as Distiller.parameter_constraints["jobs"]: more is a typo, not a machine


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
            self.bar = tqdm(
                total=total,
                desc=stage,
                unit="epoch" if stage == "teacher" else "fit",
                leave=False,
                file=sys.stderr,
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@functools.cache
def distiller_defaults() -> dict:
    """The Distiller's own defaults: the one source of the CLI's."""
    from jacdistill.estimator import Distiller

    return Distiller().get_params()


class DistillerOption(click.Option):
    """An option whose default is the Distiller parameter of the same name, read only when needed
    (importing the estimator loads torch, which ``jacdistill --help`` need not pay for)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("show_default", True)
        super().__init__(*args, **kwargs)

    def get_default(self, ctx, call=True):
        value = distiller_defaults()[self.name]
        return ",".join(map(str, value)) if isinstance(value, tuple) else value  # as typed: 64,64


class ActivationChoice(click.Choice):
    """The teacher's activations, listed where they are defined (read when first needed)."""

    def __init__(self):
        self.case_sensitive = True

    @property
    def choices(self):
        from jacdistill.teacher import ACTIVATIONS

        return tuple(ACTIVATIONS)


PROBLEM_OPTIONS = [  # what defines one distillation problem; shared by run and tune
    click.option(
        "--dataset",
        help="Bundled name, CSV/Parquet path or feynman:EQ?n=…&noise=…&seed=… "
        f"(see `jacdistill datasets --help`); default {DEFAULT_DATASET}.",
    ),
    click.option("--data", type=click.Path(dir_okay=False), help="CSV or Parquet file of your own."),
    click.option("--target", help="Target column of a file (default: the last column)."),
    click.option("--regularizer", cls=DistillerOption, help="Smoothness penalty plugin."),
    click.option("--reg-opt", multiple=True, metavar="KEY=VALUE", help="Option for the regularizer."),
    click.option("--backend", help="Regularizer backend, e.g. auto, autograd, analytic (jacobian)."),
    click.option(
        "--reg-every",
        cls=DistillerOption,
        type=click.IntRange(min=1),
        help="Apply the penalty every K steps with weight K·λ.",
    ),
    click.option("--tuner", cls=DistillerOption, help="λ tuner plugin."),
    click.option("--tuner-opt", multiple=True, metavar="KEY=VALUE", help="Option for the tuner."),
    click.option("--student", cls=DistillerOption, help="Student plugin."),
    click.option("--student-opt", multiple=True, metavar="KEY=VALUE", help="Option for the student."),
    click.option(
        "--widths",
        cls=DistillerOption,
        callback=parse_widths,
        help="Hidden layer widths of the teacher MLP, e.g. 64,64.",
    ),
    click.option("--activation", cls=DistillerOption, type=ActivationChoice()),
    click.option(
        "--epochs",
        cls=DistillerOption,
        type=click.IntRange(min=1),
        help="Maximum teacher epochs (early stopping on validation MSE; all of them with --patience none).",
    ),
    click.option("--batch-size", cls=DistillerOption, type=click.IntRange(min=1)),
    click.option("--lr", cls=DistillerOption, type=FiniteFloat(min=0, min_open=True)),
    click.option(
        "--patience",
        cls=DistillerOption,
        type=Patience(),
        metavar="N|none",
        help="Teacher epochs without validation improvement before it stops; none: never stop early.",
    ),
    click.option(
        "--keep",
        cls=DistillerOption,
        type=click.Choice(KEEP),
        help="The teacher's weights kept: of its best validation epoch, or of the last it trained "
        "(--keep last --patience none: trained to the end, the paper's regime).",
    ),
    click.option(
        "--seed",
        cls=DistillerOption,
        type=click.IntRange(0, MAX_SEED),
        help="Seed of the split, the teacher and the student (numpy's generators take no negative "
        "seed, the students' random_state none of 2**32 or more, restarts add 1000 per restart).",
    ),
    click.option(
        "--device",
        cls=DistillerOption,
        callback=parse_device,
        help="cpu, or cuda / cuda:N when available.",
    ),
    click.option(
        "--jobs",
        cls=DistillerOption,
        type=click.IntRange(1, MAX_THREADS),
        show_default="all available cores",
        help="Cores a student fit may use (Operon's threads).",
    ),
    click.option(
        "--student-rows",
        cls=DistillerOption,
        type=click.IntRange(min=1),
        help="Fit the student to a seeded subsample of at most this many teacher-labelled rows.",
    ),
    click.option(
        "--select",
        cls=DistillerOption,
        metavar="RULE",
        help="Which formula of the student's accuracy–complexity front to keep, judged on the "
        "validation rows: best (highest R²), parsimony=TOL (the simplest within TOL of the best "
        "R²) or complexity=K (the best of complexity at most K).",
    ),
    click.option(
        "--student-inputs",
        cls=DistillerOption,
        type=click.Choice(STUDENT_INPUTS),
        help="What the student fits: the teacher's standardized inputs, or the inputs scaled to "
        "unit variance but not centred (a monomial such as k*x**2 stays one).",
    ),
    click.option(
        "--drop-terms/--keep-terms",
        cls=DistillerOption,
        help="Leave small terms of the formula's sums out where R² (training and validation rows) allows.",
    ),
    click.option(
        "--batch-teachers/--no-batch-teachers",
        cls=DistillerOption,
        help="Train a tuner's candidate teachers together as one stack of MLPs.",
    ),
    click.option(
        "--threads",
        type=click.IntRange(1, MAX_THREADS),
        default=1,
        show_default=True,
        help="Torch CPU threads: one is as fast for small MLPs and robust on a busy machine.",
    ),
    click.option("--out", type=click.Path(file_okay=False), help="Run directory (default runs/<time>-…)."),
]


def problem_options(command):
    for option in reversed(PROBLEM_OPTIONS):
        command = option(command)
    return command


def load_problem(dataset, data, target, lam, opts):
    """(table, Distiller parameters, resolved plugin options) from the shared options; fails on a
    bad file, plugin or option before any training (the data before torch loads: a bad file
    fails fast)."""
    from jacdistill.data import load_file, load_spec

    if dataset is not None and data is not None:
        raise JacdistillError("give either --dataset or --data, not both")
    reject_unused(lam, opts)
    spec = DEFAULT_DATASET if dataset is None else dataset
    table = load_file(data, target) if data is not None else load_spec(spec, target)

    import torch

    from jacdistill.estimator import Distiller

    torch.set_num_threads(opts.pop("threads"))
    reg_options = parse_key_values(opts["reg_opt"], "--reg-opt")
    if opts["backend"] is not None:
        reg_options["backend"] = opts["backend"]
    params = dict(
        regularizer=opts["regularizer"],
        lam=0.0 if opts["regularizer"] == "none" else lam,
        regularizer_options=reg_options,
        reg_every=opts["reg_every"],
        tuner=opts["tuner"],
        tuner_options=parse_key_values(opts["tuner_opt"], "--tuner-opt"),
        student=opts["student"],
        student_options=parse_key_values(opts["student_opt"], "--student-opt"),
        **{
            k: opts[k]
            for k in (
                "widths",
                "activation",
                "epochs",
                "batch_size",
                "lr",
                "patience",
                "keep",
                "device",
                "seed",
                "batch_teachers",
                "jobs",
                "student_rows",
                "select",
                "student_inputs",
                "drop_terms",
            )
        },
    )
    penalty, student_options, _, tuner = Distiller(**params).resolve_plugins()
    resolved = {
        "regularizer": penalty.options,
        "student": student_options,
        "tuner": tuner.options if tuner else None,
    }
    return table, params, resolved


def reject_unused(lam, opts) -> None:
    """An option this run would ignore is an error, not a silent no-op: the tuner and its options
    with a fixed λ (run --lam NUMBER), and λ, the tuner or the penalty's settings with
    ``--regularizer none`` (no penalty, so λ = 0). The Python API checks the tuner's name and
    options even where it goes unused (``Distiller.resolve_plugins``)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    typed = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    given = lambda name: ctx.get_parameter_source(name) in typed
    tuner_flags = [flag for name, flag in (("tuner", "--tuner"), ("tuner_opt", "--tuner-opt")) if given(name)]
    if opts["regularizer"] == "none":
        if ctx.command.name == "tune":
            raise JacdistillError("tune chooses the penalty weight λ; --regularizer none has no penalty")
        penalty_flags = [
            flag for name, flag in (("lam", "--lam"), ("reg_every", "--reg-every")) if given(name)
        ]
        unused = tuner_flags + penalty_flags
        if unused:
            raise JacdistillError(f"{unused[0]} is unused with --regularizer none (no penalty, λ = 0)")
    elif lam != "auto" and tuner_flags:
        raise JacdistillError(f"{tuner_flags[0]} is unused when --lam is fixed; drop it or give --lam auto")


def start_run_dir(command, table, params, resolved, out, **settings):
    from jacdistill import pipeline, provenance
    from jacdistill.data import SPLIT

    return pipeline.prepare_run_dir(
        out or pipeline.default_run_dir(table, params, command),
        {
            "command": command,
            "dataset": table.name,
            "target": table.target_name,
            "features": table.feature_names,
            **settings,
            **params,
            "resolved_options": resolved,
            "split": SPLIT,
            "versions": provenance.package_versions(),
            "machine": provenance.machine(params["device"]),  # torch's kernels differ by CPU
        },
    )


@cli.command()
@problem_options
@click.option(
    "--lam",
    cls=DistillerOption,
    callback=parse_lam,
    help="Penalty weight λ, or auto: chosen by --tuner on the validation rows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json to stdout.")
@click.option("--no-baseline", is_flag=True, help="Skip the λ = 0 baseline fit.")
def run(dataset, data, target, lam, out, as_json, no_baseline, **opts):
    """Train a smooth teacher, distil it into a formula, compare with the λ = 0 baseline."""
    from jacdistill import evaluation, pipeline

    table, params, resolved = load_problem(dataset, data, target, lam, opts)
    run_dir = start_run_dir(
        "run", table, params, resolved, out, data_file=data, dataset_spec=dataset, baseline=not no_baseline
    )
    bars = Bars(enabled=not as_json and sys.stderr.isatty())
    started = time.perf_counter()
    with pipeline.marking_interrupts(run_dir):
        try:
            main, base = evaluation.run(
                table, params, baseline=not no_baseline, progress=bars, workdir=run_dir
            )
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
    from jacdistill import evaluation, pipeline

    table, params, resolved = load_problem(dataset, data, target, "auto", opts)
    run_dir = start_run_dir("tune", table, params, resolved, out, data_file=data, dataset_spec=dataset)
    bars = Bars(enabled=not as_json and sys.stderr.isatty())
    with pipeline.marking_interrupts(run_dir):
        try:
            report = evaluation.tune(table, params, progress=bars, workdir=run_dir)
        finally:
            bars.close()
        pipeline.write_tuning(run_dir, report)
    if as_json:
        click.echo((run_dir / "tuning.json").read_text(), nl=False)
        return
    rows = [
        (
            f"{t['lam']:.3g}",
            fmt(t["teacher_r2_val"]),
            fmt(t["teacher_r2_test"]),
            fmt(t["student_r2_val"]),
            f"{t['seconds']:.1f}",
        )
        for t in report["trials"]
    ]
    click.echo(f"{table.name}: tuner {report['tuner']} chose λ = {report['lam']:.4g}")
    click.echo(
        f"{'λ':>10} {'teacher val R²':>15} {'teacher test R²':>16} {'student val R²':>15} {'seconds':>8}"
    )
    for row in rows:
        click.echo(f"{row[0]:>10} {row[1]:>15} {row[2]:>16} {row[3]:>15} {row[4]:>8}")
    compute = report["compute"]
    click.echo(
        f"chosen: student test R² {fmt(report['student_r2_test'])}, teacher test R² "
        f"{fmt(report['teacher_r2_test'])}; compute: {compute['teacher_trainings']} teacher "
        f"trainings, {compute['student_fits']} student fits, {compute['seconds']:.1f} s"
    )
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
    rows = [
        ("teacher test R²", "teacher_r2_test"),
        ("student test R²", "student_r2_test"),
        ("fidelity R²", "fidelity_r2_test"),
        ("complexity", "complexity"),
    ]
    show = lambda v: str(v) if isinstance(v, int) else fmt(v)
    lines = [
        f"{table.name}: MLP {arch} {est.activation} teacher, {m['student']} student, seed {m['seed']}",
        f"{'':20}" + "".join(f"{title:>22}" for title, _ in columns),
    ]
    lines += [f"{label:20}" + "".join(f"{show(c[key]):>22}" for _, c in columns) for label, key in rows]
    lines.append(f"formula   {formula.as_text(est.formula_, table.target_name)}")
    if separate_base:
        lines.append(f"baseline  {formula.as_text(base.estimator.formula_, table.target_name)}")
    lines.append(f"front     complexity:validation R², [chosen] by {m['select']} (all in front.csv)")
    lines += [f"  {title:<32} {front_line(c['front'])}" for title, c in columns]
    lines.append(f"run dir   {run_dir}")
    lines.append(f"time      {seconds:.1f} s")
    return "\n".join(lines)


def front_line(front: list[dict], most: int = 8) -> str:
    """A front as ``complexity:R²`` pairs, the chosen one in brackets; at most ``most`` of them,
    evenly spread, the chosen and the extremes always shown."""
    chosen = next(i for i, member in enumerate(front) if member["chosen"])
    step = max(1, -(-len(front) // most))
    shown = sorted({0, len(front) - 1, chosen, *range(0, len(front), step)})
    pair = lambda i: f"{front[i]['complexity']}:{fmt(front[i]['student_r2_val'], 3)}"
    return "  ".join(f"[{pair(i)}]" if i == chosen else pair(i) for i in shown)


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
@click.option("--feynman", is_flag=True, help="List the Feynman equations instead.")
def datasets(as_json, feynman):
    """List the bundled datasets with their sizes.

    \b
    --dataset (run, tune) and --datasets (sweep) take dataset specs:
      NAME                     a bundled dataset listed here
      PATH                     a CSV or Parquet file (target: the last column, or --target)
      feynman:EQ?n=N&noise=L&seed=S
                               generated from the AI Feynman equation EQ (see --feynman):
                               N rows (default 1000) drawn uniformly in its variables' ranges
                               by seed S (default 0), Gaussian target noise of L × the target's
                               RMS (default 0); e.g. 'feynman:I.6.2?n=500&noise=0.01'
                               (quoted: a shell reads & and ? itself)
    """
    from jacdistill.data import bundled_datasets

    if feynman:
        from jacdistill.feynman import equations

        table = [
            {
                "name": eq.name,
                "variables": [v[0] for v in eq.variables],
                "target": eq.output,
                "formula": eq.text,
            }
            for eq in equations().values()
        ]
        echo_rows(
            table,
            as_json,
            f"{'name':10} {'variables':>9}  formula",
            lambda row: f"{row['name']:10} {len(row['variables']):>9}  {row['target']} = {row['formula']}",
        )
        return
    rows = [
        {k: row[k] for k in ("name", "rows", "features", "target", "original_source", "license_note")}
        for row in bundled_datasets()
    ]
    echo_rows(
        rows,
        as_json,
        f"{'name':16} {'rows':>6} {'features':>8}  target",
        lambda row: f"{row['name']:16} {row['rows']:>6} {row['features']:>8}  {row['target']}",
    )


def echo_rows(rows: list[dict], as_json: bool, header: str, line) -> None:
    """``rows`` as JSON, or as a header and one ``line(row)`` each."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(header)
    for row in rows:
        click.echo(line(row))


def split_list(value: str | None, cast=str) -> tuple | None:
    if value is None:
        return None
    try:
        return tuple(cast(item.strip()) for item in value.split(",") if item.strip())
    except ValueError:
        raise JacdistillError(f"expected a comma-separated list, got '{value}'") from None


@cli.command()
@click.option(
    "--config", type=click.Path(dir_okay=False), help="TOML file describing the grid; flags override it."
)
@click.option(
    "--datasets",
    help="Comma-separated dataset specs (see `jacdistill datasets --help`; default: all bundled).",
)
@click.option("--students", help=f"Comma-separated students (default: {','.join(DEFAULT_STUDENTS)}).")
@click.option("--seeds", help=f"Comma-separated seeds (default: {','.join(map(str, DEFAULT_SEEDS))}).")
@click.option("--arms", help=f"Comma-separated arms (default: {','.join(ARMS)}).")
@click.option("--regularizer", help="Smoothness penalty plugin (default: jacobian).")
@click.option("--tuner", help="λ tuner for the regularized arms (default: constrained).")
@click.option(
    "--lam", callback=parse_lam, help="Fixed λ for the regularized arms instead of tuning (default: auto)."
)
@click.option("--tuner-opt", multiple=True, metavar="KEY=VALUE", help="Option for the tuner.")
@click.option(
    "--student-opt",
    multiple=True,
    metavar="STUDENT.KEY=VALUE",
    help="Option for one student, e.g. operon.generations=50.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum teacher epochs.")
@click.option(
    "--select",
    metavar="RULE",
    help="Which formula of each fit's front every arm keeps: best, parsimony=TOL or complexity=K "
    "(default: parsimony=0.01).",
)
@click.option(
    "--student-inputs",
    type=click.Choice(STUDENT_INPUTS),
    help="What every arm's student fits: standardized inputs, or inputs scaled but not centred "
    "(default: standardized).",
)
@click.option(
    "--drop-terms/--keep-terms",
    default=None,
    help="Show every arm's formula without the small terms of its sums (default: drop).",
)
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: start a LocalCluster).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Sweep directory; rerunning with the same one resumes.",
)
def sweep(
    config,
    datasets,
    students,
    seeds,
    arms,
    regularizer,
    tuner,
    lam,
    tuner_opt,
    student_opt,
    epochs,
    select,
    student_inputs,
    drop_terms,
    executor,
    scheduler,
    workers,
    out,
):
    """Run a resumable grid of distillation trials: datasets × students × arms × seeds."""
    from pathlib import Path

    from tqdm import tqdm

    from jacdistill import sweep as sweeps

    flags = {
        "datasets": split_list(datasets),
        "students": split_list(students),
        "seeds": split_list(seeds, int),
        "arms": split_list(arms),
        "regularizer": regularizer,
        "tuner": tuner,
        "lam": lam,
        "epochs": epochs,
        "select": select,
        "student_inputs": student_inputs,
        "drop_terms": drop_terms,
    }
    spec = sweeps.spec_from(
        config,
        flags,
        parse_key_values(tuner_opt, "--tuner-opt"),
        parse_key_values(student_opt, "--student-opt"),
    )
    sweeps.check(spec)
    check_scheduler(executor, scheduler)
    try:
        sweeps.prepare(Path(out), spec)
    except RecursionError:
        raise JacdistillError(f"cannot read {Path(out) / 'sweep.json'}: nested too deeply") from None
    todo = len(sweeps.missing(Path(out), spec))
    total = len(spec.units()) * len(spec.arms)
    started = time.perf_counter()
    try:
        with tqdm(
            total=total,
            initial=total - todo,
            desc="trials",
            unit="trial",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        ) as bar:
            ran = sweeps.execute(
                spec,
                Path(out),
                executor,
                workers,
                scheduler,
                on_done=lambda n: bar.update(total - todo + n - bar.n),
            )
    except sweeps.Stopped as stop:  # exit 130 for SIGINT, 143 for SIGTERM: 128 + the signal
        kept = total - len(sweeps.missing(Path(out), spec))
        click.echo(
            f"sweep stopped: {kept - (total - todo)} trials finished, {kept} kept in {out}; rerun to resume",
            err=True,
        )
        sys.exit(128 + stop.signum)
    except sweeps.UnitsFailed as failure:  # not bad input (exit 2): the sweep ran, some units did not
        click.echo(f"sweep: {failure}", err=True)
        sys.exit(1)
    click.echo(
        f"sweep: {ran} trials run, {total - todo} already finished, {total} in all, "
        f"{time.perf_counter() - started:.0f} s; report: jacdistill report {out}"
    )


@cli.command()
@click.argument("sweep_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the aggregates as JSON.")
def report(sweep_dir, as_json):
    """Summarize a sweep: Markdown report and plots in SWEEP_DIR, or the aggregates as JSON."""
    from jacdistill import report as reports
    from jacdistill import storage

    try:
        if as_json:
            click.echo(storage.to_json(reports.report_json(sweep_dir)))
            return
        click.echo(f"report written to {reports.write_report(sweep_dir)}")
    except RecursionError:
        raise JacdistillError(f"cannot read {too_deep(sweep_dir)}: JSON nested too deeply") from None


def too_deep(sweep_dir: str) -> str:
    """The JSON file of a sweep directory that is nested too deeply to read (or the directory)."""
    from pathlib import Path

    for path in [Path(sweep_dir) / "sweep.json", *sorted(Path(sweep_dir, "trials").glob("*.json"))]:
        try:
            json.loads(path.read_text())
        except RecursionError:
            return str(path)
        except (OSError, ValueError):
            continue
    return sweep_dir


def check_scheduler(executor: str, scheduler: str | None) -> None:
    """A Dask scheduler address is [tcp|tls|ws|wss|ucx://]HOST:PORT, and only the dask executor
    uses one."""
    import re

    if scheduler is None:
        return
    if executor != "dask":
        raise JacdistillError("--scheduler is unused with --executor local; add --executor dask")
    match = re.fullmatch(r"(?:(tcp|tls|ws|wss|ucx)://)?(\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})", scheduler)
    if match is None or not 1 <= int(match.group(3)) <= 65535:
        raise JacdistillError(f"--scheduler expects an address such as tcp://HOST:PORT, got '{scheduler}'")


def main():
    cli()
