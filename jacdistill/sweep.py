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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from jacdistill import storage
from jacdistill.options import JacdistillError

ARMS = ("direct", "baseline", "regularized", "augmented", "control")


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
    def from_settings(cls, settings: dict) -> "SweepSpec":
        """From TOML or ``sweep.json`` settings; a field they lack takes its default."""
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
        except TypeError as exc:
            raise JacdistillError(f"bad sweep settings: {exc}") from None

    def units(self) -> list[tuple[str, str, int]]:
        return [(d, s, seed) for d in self.datasets for s in self.students for seed in self.seeds]

    def params(self, student: str, seed: int, **changes) -> dict:
        """Distiller parameters for one fit of this sweep."""
        return {"regularizer": self.regularizer, "regularizer_options": self.regularizer_options,
                "tuner": self.tuner, "tuner_options": self.tuner_options, "student": student,
                "student_options": self.student_options.get(student, {}), "seed": seed,
                **self.teacher, **changes}


def trial_path(sweep_dir: Path, dataset: str, student: str, arm: str, seed: int) -> Path:
    return Path(sweep_dir) / "trials" / f"{dataset}__{student}__{arm}__seed{seed}.json"


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


def pending(sweep_dir: Path, spec: SweepSpec) -> list[tuple[str, str, int]]:
    """The units with at least one arm still to run."""
    return [unit for unit in spec.units()
            if any(not trial_path(sweep_dir, *unit[:2], arm, unit[2]).exists() for arm in spec.arms)]


def run_unit(spec: SweepSpec, sweep_dir: str, unit: tuple[str, str, int]) -> int:
    """Run the unfinished arms of one (dataset, student, seed); return how many trials ran."""
    import torch

    from jacdistill.data import load_bundled

    torch.set_num_threads(1)  # one process per core: small MLPs gain nothing from more threads
    dataset, student, seed = unit
    data, ran = load_bundled(dataset), 0
    for arm in spec.arms:
        path = trial_path(Path(sweep_dir), dataset, student, arm, seed)
        if path.exists():
            continue
        started = time.perf_counter()
        record = ARM_RUNNERS[arm](spec, data, student, seed, Path(sweep_dir))
        record.update(dataset=dataset, student=student, arm=arm, seed=seed,
                      seconds=time.perf_counter() - started)
        storage.write_json(path, record)
        ran += 1
    return ran


def _distilled(spec, data, student, seed, sweep_dir, **changes) -> dict:
    from jacdistill import pipeline

    return pipeline.fit_and_score(data, spec.params(student, seed, **changes), split_seed=seed).metrics


def _direct(spec, data, student, seed, sweep_dir) -> dict:
    """The student on the true targets (standardized like the distilled students' inputs)."""
    from jacdistill import formula
    from jacdistill.data import Standardizer, split_indices
    from jacdistill.metrics import r2
    from jacdistill.registry import registry

    split = split_indices(len(data.y), seed)
    x_scaler, y_scaler = Standardizer.fit(data.X[split.train]), Standardizer.fit(data.y[split.train, None])
    cls = registry().available("student", student)
    model = cls(seed=seed, **cls.resolve_options(spec.student_options.get(student, {})))
    model.fit(x_scaler.transform(data.X[split.train]), y_scaler.transform(data.y[split.train, None])[:, 0])
    predict = lambda rows: y_scaler.inverse(model.predict(x_scaler.transform(data.X[rows]))[:, None])[:, 0]
    expression = formula.to_original_units(model.expression(), x_scaler, y_scaler, data.feature_names)
    return {"lam": None, "teacher_r2_test": None, "fidelity_r2_test": None, "teacher_r2_val": None,
            "student_r2_test": r2(data.y[split.test], predict(split.test)),
            "student_r2_val": r2(data.y[split.val], predict(split.val)),
            "complexity": int(model.complexity()),
            "formula": formula.as_text(expression, data.target_name, digits=6)}


def _control(spec, data, student, seed, sweep_dir) -> dict:
    from jacdistill.tuning import restart_seed

    regularized = storage.read_json(trial_path(sweep_dir, data.name, student, "regularized", seed))
    k = regularized["tuning"]["compute"]["teacher_trainings"] if "tuning" in regularized else 1
    candidates = [_distilled(spec, data, student, restart_seed(seed, i), sweep_dir, regularizer="none", lam=0.0)
                  for i in range(k)]
    best = max(candidates, key=lambda m: -np.inf if m["student_r2_val"] != m["student_r2_val"]
               else m["student_r2_val"])
    return {**best, "candidates": k, "candidate_seeds": [m["seed"] for m in candidates]}


ARM_RUNNERS: dict[str, Callable] = {
    "direct": _direct,
    "baseline": lambda spec, data, student, seed, d: _distilled(spec, data, student, seed, d,
                                                                regularizer="none", lam=0.0),
    "regularized": lambda spec, data, student, seed, d: _distilled(spec, data, student, seed, d, lam=spec.lam),
    "augmented": lambda spec, data, student, seed, d: _distilled(spec, data, student, seed, d, lam=spec.lam,
                                                                 augment=spec.augment, jitter=spec.jitter),
    "control": _control,
}


def execute(spec: SweepSpec, sweep_dir: Path, executor: str = "local", workers: int = 2,
            scheduler: str | None = None, on_done: Callable[[int], None] = lambda n: None) -> int:
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

        cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1,
                                                      processes=True, dashboard_address=None)
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
