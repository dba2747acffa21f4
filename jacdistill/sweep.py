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
rerun skips what is there, so a crash or kill loses only the trials in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jacdistill import storage
from jacdistill.data import Dataset
from jacdistill.options import JacdistillError
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
    teacher: dict = field(default_factory=dict)  # Distiller parameters: widths, epochs, ...
    augment: float = 2.0
    jitter: float = 0.1

    def __post_init__(self):
        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown:
            raise JacdistillError(f"unknown arm '{unknown[0]}'; arms: {', '.join(ARMS)}")
        if "control" in self.arms and "regularized" not in self.arms:
            raise JacdistillError("the control arm needs the regularized arm (it matches its compute)")
        for name in ("datasets", "students", "seeds"):
            if not getattr(self, name):
                raise JacdistillError(f"a sweep needs at least one of {name}")

    @classmethod
    def from_settings(cls, settings: dict) -> SweepSpec:
        """From TOML or ``sweep.json`` settings; a field they lack takes its default."""
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
        except TypeError as exc:
            raise JacdistillError(f"bad sweep settings: {exc}") from None

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
            **self.teacher,
            **changes,
        }


def spec_from(config: str | None, flags: dict, tuner_opts: dict, student_opts: dict) -> SweepSpec:
    """The sweep's settings: the TOML file ``config`` (if any), overridden by the command line's
    ``flags`` (None: not given), ``tuner_opts`` and ``student_opts`` (``{"student.key": value}``);
    what neither gives takes the sweep's default."""
    import tomllib

    from jacdistill.data import bundled_datasets

    settings = {}
    if config:
        try:
            settings = tomllib.loads(Path(config).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise JacdistillError(f"cannot read config {config}: {exc}") from None
    epochs = flags.pop("epochs", None)
    settings.update({k: v for k, v in flags.items() if v is not None})
    settings.setdefault("datasets", tuple(row["name"] for row in bundled_datasets()))
    settings.setdefault("students", DEFAULT_STUDENTS)
    settings.setdefault("seeds", DEFAULT_SEEDS)
    settings["tuner_options"] = {**settings.get("tuner_options", {}), **tuner_opts}
    per_student = {name: dict(opts) for name, opts in settings.get("student_options", {}).items()}
    for key, value in student_opts.items():
        name, dot, option = key.partition(".")
        if not dot:
            raise JacdistillError(f"--student-opt expects STUDENT.KEY=VALUE, got '{key}={value}'")
        per_student.setdefault(name, {})[option] = value
    settings["student_options"] = per_student
    if epochs is not None:
        settings["teacher"] = {**settings.get("teacher", {}), "epochs": epochs}
    return SweepSpec.from_settings(settings)


def check(spec: SweepSpec) -> None:
    """Fail on an unknown dataset, plugin or option before any worker starts."""
    from jacdistill.data import bundled_entry
    from jacdistill.estimator import Distiller

    for name in spec.datasets:
        bundled_entry(name)
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
    return [
        (unit, arm)
        for unit in spec.units()
        for arm in spec.arms
        if not trial_path(sweep_dir, unit[0], unit[1], arm, unit[2]).exists()
    ]


def pending(sweep_dir: Path, spec: SweepSpec) -> list[tuple[str, str, int]]:
    """The units with at least one arm still to run, in the spec's order."""
    return list(dict.fromkeys(unit for unit, _ in missing(sweep_dir, spec)))


def run_unit(spec: SweepSpec, sweep_dir: str, unit: tuple[str, str, int], jobs: int = 1) -> int:
    """Run the unfinished arms of one (dataset, student, seed) with ``jobs`` cores for each
    student fit; return how many trials ran.

    The regularized arm runs before the baseline, whose teacher is the tuner's λ = 0 teacher when
    the tuner trained one, and the control's first candidate is the baseline itself: nothing is
    trained twice."""
    import torch

    from jacdistill.data import load_bundled

    torch.set_num_threads(1)  # one process per core: small MLPs gain nothing from more threads
    dataset, student, seed = unit
    work = Unit(spec, load_bundled(dataset), student, seed, Path(sweep_dir), jobs)
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
    return evaluation.direct(unit.data, unit.student, options, unit.seed, unit.jobs)


def _control(unit: Unit) -> dict:
    """The best on validation of k λ = 0 runs seeded by restart seeds (k: the regularized arm's
    teacher trainings); the first (the unit's seed) is the baseline."""
    from jacdistill.metrics import rank_score
    from jacdistill.search import restart_seed

    regularized = unit.finished("regularized")
    assert regularized is not None  # SweepSpec: the control runs with the regularized arm, after it
    k = regularized["tuning"]["compute"]["teacher_trainings"] if "tuning" in regularized else 1
    first = unit.finished("baseline") or unit.distil("baseline", baseline=True)
    candidates = [first] + [
        unit.distil(f"control{i}", model_seed=restart_seed(unit.seed, i), baseline=True) for i in range(1, k)
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
    """Run every pending unit; ``on_done(trials)`` after each unit. Returns the trials run."""
    units = pending(sweep_dir, spec)
    total = 0
    if executor == "local":
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_unit, spec, str(sweep_dir), unit) for unit in units]
            for future in as_completed(futures):
                total += future.result()
                on_done(total)
        return total
    if executor == "dask":
        from distributed import Client, LocalCluster, as_completed

        cluster = (
            None
            if scheduler
            else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        )
        try:
            with Client(scheduler or cluster) as client:
                futures = [client.submit(run_unit, spec, str(sweep_dir), unit, pure=False) for unit in units]
                for future in as_completed(futures):
                    total += future.result()
                    on_done(total)
        finally:
            if cluster is not None:
                cluster.close()
        return total
    raise JacdistillError(f"unknown executor '{executor}'; executors: local, dask")
