"""A distillation benchmark sweep: datasets × students × arms × seeds, resumable, on local worker
processes or a Dask cluster.

Arms, all on the same seeded 70/15/15 split of a (dataset, seed):
- ``direct``: the student fitted to the true targets, no teacher;
- ``baseline``: distilled from the λ = 0 teacher;
- ``regularized``: distilled from the teacher with the tuned λ (or a fixed ``lam``);
- ``augmented``: as regularized, and the teacher also labels inputs jittered around the training
  rows for the student;
- ``control``: k λ = 0 teachers with different seeds, k = the teachers the regularized arm's tuner
  trained, keeping the one whose student scores best on validation: choosing λ among k candidates
  is also choosing the best of k noisy runs, and regularization only counts where it beats this.

Work is split into units (dataset, student, seed) that run their arms in order; every finished
trial is written atomically to ``trials/<dataset>__<student>__<arm>__seed<seed>.json``, and a
rerun skips what is there, so a crash or kill loses only the trials in flight. A unit that raises
does not stop the others: its traceback goes to ``failures.log`` and, once the rest have run,
:class:`UnitsFailed` says how many failed (a rerun retries them).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from jacdistill import fronts, storage
from jacdistill.data import Dataset, spec_name
from jacdistill.options import STUDENT_INPUTS, JacdistillError
from jacdistill.trials import ARMS, DEFAULT_SEEDS, DEFAULT_STUDENTS, trial_path


@dataclass(frozen=True)
class SweepSpec:
    datasets: tuple[str, ...]
    students: tuple[str, ...]
    seeds: tuple[int, ...]
    arms: tuple[str, ...] = ARMS
    regularizer: str = "jacobian"
    regularizer_options: dict = field(default_factory=dict)
    tuner: str = "constrained"
    tuner_options: dict = field(default_factory=dict)
    lam: float | str = "auto"  # the regularized arms' λ: "auto" (tuned) or a fixed number
    student_options: dict = field(default_factory=dict)  # student name -> its options
    teacher: dict = field(default_factory=dict)  # Distiller parameters: widths, epochs, keep, ...
    augment: float = 2.0
    jitter: float = 0.1
    select: str = fronts.DEFAULT_RULE  # which front member every arm's fit gives
    student_inputs: str = "standardized"  # or "scaled", for every arm's student (Distiller's)
    drop_terms: bool = True  # every arm's formula shown without its small terms (Distiller's)

    def __post_init__(self):
        self._check_types()
        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown:
            raise JacdistillError(f"unknown arm '{unknown[0]}'; arms: {', '.join(ARMS)}")
        if "control" in self.arms and "regularized" not in self.arms:
            raise JacdistillError("the control arm needs the regularized arm (it matches its compute)")
        for name in ("datasets", "students", "seeds", "arms"):
            if not getattr(self, name):
                raise JacdistillError(f"a sweep needs at least one of {name}")
        for name in ("datasets", "students", "seeds", "arms"):
            seen: set = set()
            for item in getattr(self, name):
                if item in seen:  # the same unit twice would run twice at once and count double
                    raise JacdistillError(f"{name} lists {item!r} twice; give each once")
                seen.add(item)

    def _check_types(self) -> None:
        check_settings({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_settings(cls, settings: dict) -> SweepSpec:
        """From TOML or ``sweep.json`` settings; a field they lack takes its default."""
        check_settings(settings)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})

    def units(self) -> list[tuple[str, str, int]]:
        return [(d, s, seed) for d in self.datasets for s in self.students for seed in self.seeds]

    def params(self, student: str, seed: int, **changes) -> dict:
        """Distiller parameters for one fit of this sweep."""
        return {
            "regularizer": self.regularizer,
            "regularizer_options": self.regularizer_options,
            "tuner": self.tuner,
            "tuner_options": self.tuner_options,
            "student": student,
            "student_options": self.student_options.get(student, {}),
            "seed": seed,
            "select": self.select,
            "student_inputs": self.student_inputs,
            "drop_terms": self.drop_terms,
            **self.teacher,
            **changes,
        }


MAX_SEED = 2**31 - 1  # as Distiller.parameter_constraints["seed"]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _seeds(value) -> bool:
    is_seed = lambda s: isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
    return isinstance(value, (list, tuple)) and all(map(is_seed, value))


def _names(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


SETTING_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {  # setting -> (test, description)
    "datasets": (_names, "a list of names"),
    "students": (_names, "a list of names"),
    "arms": (_names, "a list of names"),
    "seeds": (_seeds, f"a list of integers in [0, {MAX_SEED}]"),
    "regularizer": (lambda v: isinstance(v, str), "a name"),
    "tuner": (lambda v: isinstance(v, str), "a name"),
    "regularizer_options": (lambda v: isinstance(v, dict), "a table of options"),
    "tuner_options": (lambda v: isinstance(v, dict), "a table of options"),
    "teacher": (lambda v: isinstance(v, dict), "a table of teacher settings"),
    "student_options": (
        lambda v: isinstance(v, dict) and all(isinstance(o, dict) for o in v.values()),
        "a table of tables, one per student",
    ),
    "lam": (lambda v: v == "auto" or (_is_number(v) and v >= 0), "'auto' or a finite number >= 0"),
    "augment": (lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    "jitter": (lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    "select": (fronts.is_rule, "best, parsimony=TOL (TOL ≥ 0) or complexity=K (K ≥ 1)"),
    "student_inputs": (lambda v: v in STUDENT_INPUTS, " or ".join(STUDENT_INPUTS)),
    "drop_terms": (lambda v: isinstance(v, bool), "true or false"),
}
TEACHER_SET_BY_SWEEP = ("regularizer", "regularizer_options", "tuner", "tuner_options", "lam", "student",
                        "student_options", "seed", "augment", "jitter", "jobs", "select",
                        "student_inputs", "drop_terms")  # fmt: skip


def check_settings(settings) -> None:
    """Fail, one line, on an unknown sweep setting or one of the wrong type (a TOML file or a
    hand-edited sweep.json may hold anything)."""
    if not isinstance(settings, dict):
        raise JacdistillError(f"sweep settings must be a table, got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(SETTING_TYPES))
    if unknown:
        raise JacdistillError(f"unknown sweep setting '{unknown[0]}'; settings: {', '.join(SETTING_TYPES)}")
    for name, value in settings.items():
        accepts, description = SETTING_TYPES[name]
        if not accepts(value):
            shown = repr(list(value) if isinstance(value, tuple) else value).replace("\n", " ")
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise JacdistillError(f"sweep setting '{name}' must be {description}, got {shown}")
    teacher = settings.get("teacher", {})
    taken = [key for key in teacher if key in TEACHER_SET_BY_SWEEP]
    if taken:
        raise JacdistillError(f"sweep setting 'teacher' cannot set '{taken[0]}': the sweep sets it")


def spec_from(config: str | None, flags: dict, tuner_opts: dict, student_opts: dict) -> SweepSpec:
    """The sweep's settings: the TOML file ``config`` (if any), overridden by the command line's
    ``flags`` (None: not given), ``tuner_opts`` and ``student_opts`` (``{"student.key": value}``);
    what neither gives takes the sweep's default."""
    import tomllib

    from jacdistill.data import bundled_datasets

    settings: dict = {}
    if config:
        try:
            settings = tomllib.loads(Path(config).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise JacdistillError(f"cannot read config {config}: {exc}".splitlines()[0]) from None
        except RecursionError:
            raise JacdistillError(f"cannot read config {config}: values nested too deeply") from None
        check_settings(settings)  # before the command line's flags are merged into them
        if settings.get("teacher", {}).get("patience") == "none":  # TOML has no null: never stop early
            settings["teacher"] = {**settings["teacher"], "patience": None}
    epochs = flags.pop("epochs", None)
    settings.update({k: v for k, v in flags.items() if v is not None})
    settings.setdefault("datasets", tuple(row["name"] for row in bundled_datasets()))
    settings.setdefault("students", DEFAULT_STUDENTS)
    settings.setdefault("seeds", DEFAULT_SEEDS)
    tuner_given = "tuner" in settings or bool(settings.get("tuner_options")) or bool(tuner_opts)
    if tuner_given and settings.get("lam", "auto") != "auto":
        flag = (
            "--tuner-opt" if tuner_opts else "--tuner" if flags.get("tuner")
            else "the config's 'tuner'" if "tuner" in settings else "the config's 'tuner_options'"
        )  # fmt: skip
        raise JacdistillError(f"{flag} is unused when lam is fixed; drop it or use lam auto")
    settings["tuner_options"] = {**settings.get("tuner_options", {}), **tuner_opts}
    per_student = {name: dict(opts) for name, opts in settings.get("student_options", {}).items()}
    for key, value in student_opts.items():
        name, dot, option = key.partition(".")
        if not dot or not name or not option:
            raise JacdistillError(f"--student-opt expects STUDENT.KEY=VALUE, got '{key}={value}'")
        per_student.setdefault(name, {})[option] = value
    strangers = [name for name in per_student if name not in settings["students"]]
    if strangers:
        raise JacdistillError(
            f"student options for '{strangers[0]}', which is not among this sweep's students "
            f"({', '.join(settings['students'])})"
        )
    settings["student_options"] = per_student
    if epochs is not None:
        settings["teacher"] = {**settings.get("teacher", {}), "epochs": epochs}
    return SweepSpec.from_settings(settings)


def check(spec: SweepSpec) -> None:
    """Fail on a bad dataset spec, plugin or option before any worker starts."""
    from jacdistill.data import load_spec
    from jacdistill.estimator import Distiller

    named: dict[str, str] = {}
    for dataset in spec.datasets:
        name = load_spec(dataset).name  # loads it: a bad file or spec fails here, not in a worker
        if name in named:  # their trials would share files
            raise JacdistillError(
                f"datasets '{named[name]}' and '{dataset}' are both named '{name}'; drop or rename one"
            )
        named[name] = dataset
    settable = sorted(set(Distiller().get_params()) - set(TEACHER_SET_BY_SWEEP))
    unknown = [key for key in spec.teacher if key not in settable]
    if unknown:
        raise JacdistillError(
            f"sweep setting 'teacher' has no setting '{unknown[0]}'; teacher settings: {', '.join(settable)}"
        )
    for student in spec.students:
        Distiller(
            **spec.params(student, 0, lam=spec.lam, augment=spec.augment, jitter=spec.jitter)
        ).resolve_plugins()


def prepare(sweep_dir: Path, spec: SweepSpec) -> None:
    """Create the sweep directory with ``sweep.json``; a rerun must use the same settings."""
    sweep_dir = Path(sweep_dir)
    saved = sweep_dir / "sweep.json"
    if saved.exists():
        try:
            earlier = SweepSpec.from_settings(storage.read_json(saved))
        except (OSError, ValueError, JacdistillError) as exc:  # ValueError: not JSON
            raise JacdistillError(f"cannot read {saved}: {exc}".splitlines()[0]) from None
        if earlier != spec:
            raise JacdistillError(f"{sweep_dir} holds a sweep with other settings; use another --out")
        for leftover in (sweep_dir / "trials").glob(".*.tmp"):  # from writes a kill interrupted
            leftover.unlink()
        return
    (sweep_dir / "trials").mkdir(parents=True, exist_ok=True)
    storage.write_text(saved, storage.to_json(asdict(spec)) + "\n")


def missing(sweep_dir: Path, spec: SweepSpec) -> list[tuple[tuple[str, str, int], str]]:
    """(unit, arm) of every trial not yet finished."""
    names = {dataset: spec_name(dataset) for dataset in spec.datasets}  # what trial files are named by
    return [
        (unit, arm)
        for unit in spec.units()
        for arm in spec.arms
        if not trial_path(sweep_dir, names[unit[0]], unit[1], arm, unit[2]).exists()
    ]


def pending(sweep_dir: Path, spec: SweepSpec) -> list[tuple[str, str, int]]:
    """The units with at least one arm still to run, in the spec's order."""
    return list(dict.fromkeys(unit for unit, _ in missing(sweep_dir, spec)))


def jobs_per_worker(workers: int) -> int:
    """Cores for each worker's student fits: workers × jobs never exceeds the cores here."""
    from jacdistill.estimator import available_cores

    return max(1, available_cores() // workers)


def run_unit(spec: SweepSpec, sweep_dir: str, unit: tuple[str, str, int], jobs: int = 1) -> int:
    """Run the unfinished arms of one (dataset, student, seed) with ``jobs`` cores for each
    student fit; return how many trials ran.

    The regularized arm runs before the baseline, whose teacher is the tuner's λ = 0 teacher when
    the tuner trained one, and the control's first candidate is the baseline itself: nothing is
    trained twice."""
    import torch

    from jacdistill.data import load_spec

    torch.set_num_threads(1)  # one process per core: small MLPs gain nothing from more threads
    dataset, student, seed = unit
    work = Unit(spec, load_spec(dataset), student, seed, Path(sweep_dir), jobs)
    dataset = work.data.name  # trial files and records name the data set by spec_name, not its spec
    ran = 0
    for arm in sorted(spec.arms, key=RUN_ORDER.index):
        path = trial_path(work.sweep_dir, dataset, student, arm, seed)
        if path.exists():
            continue
        started = time.perf_counter()
        record = ARM_RUNNERS[arm](work)
        record.update(
            dataset=dataset, student=student, arm=arm, seed=seed, seconds=time.perf_counter() - started
        )
        storage.write_json(path, record)
        ran += 1
    return ran


RUN_ORDER = ("direct", "regularized", "baseline", "augmented", "control")


@dataclass
class Unit:
    """One (dataset, student, seed) being run, and the fits its arms made in this process."""

    spec: SweepSpec
    data: Dataset
    student: str
    seed: int
    sweep_dir: Path
    jobs: int = 1  # cores for each student fit
    fits: dict = field(default_factory=dict)  # arm -> evaluation.Fitted

    def distil(
        self, arm: str, model_seed: int | None = None, baseline: bool = False, reuse=(), **changes
    ) -> dict:
        """A distilled student on the unit's split; teacher and student seeded ``model_seed``
        (default: the unit's seed). The fit is kept under ``arm`` for later arms to reuse."""
        from jacdistill import evaluation

        params = self.spec.params(self.student, self.seed if model_seed is None else model_seed, **changes)
        params["jobs"] = self.jobs
        fitted = evaluation.fit_and_score(
            self.data,
            evaluation.baseline_params(params) if baseline else params,
            split_seed=self.seed,
            reuse=reuse,
        )
        self.fits[arm] = fitted
        return fitted.metrics

    def restart_teachers(self, seeds: list[int]) -> list:
        """The λ = 0 teachers of the unit's baseline fit re-seeded with ``seeds``, trained together."""
        from jacdistill import evaluation

        params = {**evaluation.baseline_params(self.spec.params(self.student, self.seed)), "jobs": self.jobs}
        return evaluation.restart_teachers(self.data, params, seeds, split_seed=self.seed)

    def finished(self, arm: str) -> dict | None:
        """The metrics of ``arm`` for this unit: from this process's fit, or from its trial file."""
        if arm in self.fits:
            return self.fits[arm].metrics
        path = trial_path(self.sweep_dir, self.data.name, self.student, arm, self.seed)
        return storage.read_json(path) if path.exists() else None


def _baseline(unit: Unit) -> dict:
    from jacdistill import evaluation

    regularized = unit.fits.get("regularized")
    return unit.distil(
        "baseline", baseline=True, reuse=evaluation.reusable_baseline(regularized) if regularized else ()
    )


def _direct(unit: Unit) -> dict:
    from jacdistill import evaluation

    options = unit.spec.student_options.get(unit.student, {})
    spec = unit.spec
    return evaluation.direct(
        unit.data,
        unit.student,
        options,
        unit.seed,
        unit.jobs,
        spec.select,
        spec.student_inputs,
        spec.drop_terms,
    )


def _control(unit: Unit) -> dict:
    """The best on validation of k λ = 0 runs seeded by restart seeds (k: the regularized arm's
    teacher trainings); the first (the unit's seed) is the baseline."""
    from jacdistill.metrics import rank_score
    from jacdistill.search import restart_seed

    regularized = unit.finished("regularized")
    assert regularized is not None  # SweepSpec: the control runs with the regularized arm, after it
    k = regularized["tuning"]["compute"]["teacher_trainings"] if "tuning" in regularized else 1
    first = unit.finished("baseline") or unit.distil("baseline", baseline=True)
    seeds = [restart_seed(unit.seed, i) for i in range(1, k)]
    teachers = unit.restart_teachers(seeds) if seeds else []
    candidates = [first] + [
        unit.distil(f"control{seed}", model_seed=seed, baseline=True, reuse=[trial])
        for seed, trial in zip(seeds, teachers)
    ]
    best = max(candidates, key=lambda m: rank_score(m["student_r2_val"]))
    keys = ("dataset", "student", "arm", "seed", "seconds")  # a trial file's own keys, set anew
    return {**{key: v for key, v in best.items() if key not in keys}, "candidates": k,
            "candidate_seeds": [restart_seed(unit.seed, i) for i in range(k)]}  # fmt: skip


ARM_RUNNERS: dict[str, Callable[[Unit], dict]] = {
    "direct": _direct,
    "baseline": _baseline,
    "regularized": lambda unit: unit.distil("regularized", lam=unit.spec.lam),
    "augmented": lambda unit: unit.distil(
        "augmented", lam=unit.spec.lam, augment=unit.spec.augment, jitter=unit.spec.jitter
    ),
    "control": _control,
}


def execute(
    spec: SweepSpec,
    sweep_dir: Path,
    executor: str = "local",
    workers: int = 2,
    scheduler: str | None = None,
    on_done: Callable[[int], None] = lambda n: None,
) -> int:
    """Run every pending unit; ``on_done(trials)`` after each unit. Returns the trials run.

    SIGINT or SIGTERM stops it within seconds: queued units are cancelled, the workers killed (the
    trials they were running have no file yet, and lose nothing else), and :class:`Stopped` is
    raised."""
    if executor not in ("local", "dask"):
        raise JacdistillError(f"unknown executor '{executor}'; executors: local, dask")
    units = pending(sweep_dir, spec)
    log = Path(sweep_dir) / "failures.log"
    log.unlink(missing_ok=True)  # an earlier run's: its units are pending again
    ran, failures, tracebacks = 0, [], []

    def done(trials: int) -> None:
        nonlocal ran
        ran += trials
        on_done(ran)

    def failed(unit: tuple[str, str, int], exc: Exception) -> None:
        failures.append((unit, f"{type(exc).__name__}: {exc}".splitlines()[0]))
        tracebacks.append(f"unit {unit}\n" + "".join(traceback.format_exception(exc)))
        storage.write_text(log, "\n".join(tracebacks))

    with _stopping_on_signals():
        if executor == "local":
            _run_local(spec, sweep_dir, units, workers, done, failed)
        else:
            _run_dask(spec, sweep_dir, units, workers, scheduler, done, failed)
    if failures:
        raise UnitsFailed(failures, len(units), log)
    return ran


class UnitsFailed(Exception):
    """Units that raised while the others ran: ``failures`` holds (unit, one-line reason); their
    tracebacks are in ``log``."""

    def __init__(self, failures: list[tuple[tuple[str, str, int], str]], total: int, log: Path):
        (dataset, student, seed), reason = failures[0]
        super().__init__(
            f"{len(failures)} of {total} units failed, the first (dataset '{dataset}', student "
            f"'{student}', seed {seed}) with {reason}; their trials are missing (a rerun retries them); "
            f"tracebacks in {log}"
        )
        self.failures = failures


class Stopped(BaseException):
    """SIGINT or SIGTERM (``signum``) stopped the sweep. A BaseException, as KeyboardInterrupt is,
    so that no ``except Exception`` on its way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stopping_on_signals():
    """SIGINT and SIGTERM raise :class:`Stopped` in the main thread (SIGTERM's default would end
    this process at once, before it stops its workers); once stopping, further ones are ignored
    so that the stop completes. A signal ignored from the start stays ignored (``cmd &`` ignores
    SIGINT), and only the main thread may set handlers."""
    signums = (signal.SIGINT, signal.SIGTERM)
    before = {signum: signal.getsignal(signum) for signum in signums}

    def stop(signum, frame):
        for other in signums:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signum)

    if threading.current_thread() is threading.main_thread():
        for signum, handler in before.items():
            if handler is not signal.SIG_IGN:
                signal.signal(signum, stop)
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in before.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _run_local(
    spec: SweepSpec, sweep_dir: Path, units: list, workers: int, done: Callable, failed: Callable
) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_started)
    try:
        futures = {
            pool.submit(run_unit, spec, str(sweep_dir), unit, jobs_per_worker(workers)): unit
            for unit in units
        }
        for future in as_completed(futures):
            _settle(future, futures[future], done, failed)
    except BaseException:
        for process in list(pool._processes.values()):  # no public way to stop them before Python 3.14
            process.kill()
        raise
    finally:
        pool.shutdown(cancel_futures=True)


def _settle(future, unit: tuple[str, str, int], done: Callable, failed: Callable) -> None:
    """Pass a finished unit's trial count to ``done``, or what it raised to ``failed``."""
    try:
        trials = future.result()
    except Exception as exc:  # noqa: BLE001 - whatever a unit raises, the others go on
        failed(unit, exc)
    else:
        done(trials)


def _worker_started() -> None:
    """Only the sweep's main process decides when to stop: a worker ignores SIGINT and SIGTERM (a
    Ctrl-C or kill of the process group reaches it too), and dies with the process that started
    it, however that dies (kill -9, the OOM killer), instead of waiting forever for work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before prctl took effect
            os._exit(1)
    else:  # no death signal: a thread watches for the parent to change (the parent died)
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def dask_setup(worker) -> None:
    """Dask's preload hook, run by each LocalCluster worker process as it starts: it ignores a
    Ctrl-C of the process group, which is the main process's to handle. (Dask's workers already
    die with their parent, and Dask stops them with SIGTERM when they fail to start.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


SCHEDULER_TIMEOUT = 5  # seconds to reach a --scheduler; Dask's own default is 30


def _run_dask(
    spec: SweepSpec,
    sweep_dir: Path,
    units: list,
    workers: int,
    scheduler: str | None,
    done: Callable,
    failed: Callable,
) -> None:
    """On a LocalCluster, closed on the way out, which kills its workers; a --scheduler's workers
    finish the units they were running (Dask cannot stop a running task), and the next run skips
    the trials they write."""
    import logging

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
            except Exception as exc:  # timed out, refused, or something else answered
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                raise JacdistillError(
                    f"cannot connect to the Dask scheduler {scheduler} ({reason})"
                ) from None
        else:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,  # not its warnings on closing while tasks run
                preload=[__name__],  # dask_setup: the workers are set up as the local ones
            )
            client = Client(cluster)
        with client:
            jobs = 1 if scheduler else jobs_per_worker(workers)  # a remote cluster's cores are its own
            futures = {
                client.submit(run_unit, spec, str(sweep_dir), unit, jobs, pure=False): unit for unit in units
            }
            try:
                for future in as_completed(futures):
                    _settle(future, futures[future], done, failed)
            finally:
                client.cancel(list(futures))
    finally:
        if cluster is not None:
            cluster.close()
