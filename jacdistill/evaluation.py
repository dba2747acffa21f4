"""Fitting and scoring, as the CLI and the sweep perform them: the seeded split, the regularized
fit and its λ = 0 baseline, symbolic regression on the data itself (the direct arm), a tuner's
report, and the validation and test scores of each. No files are written here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from jacdistill import formula, fronts, groundtruth
from jacdistill.data import Dataset, Split, split_indices
from jacdistill.estimator import DirectRegressor, Distiller, FormulaEstimator
from jacdistill.metrics import r2
from jacdistill.search import Progress, Search, Trial


@dataclass
class Fitted:
    estimator: Distiller
    metrics: dict


def fit_and_score(
    data: Dataset,
    params: dict,
    progress: Progress | None = None,
    workdir: Path | None = None,
    split_seed: int | None = None,
    reuse: Sequence[Trial] = (),
) -> Fitted:
    """Fit ``Distiller(**params)`` on the train/val split and score it on the test split; the
    split is drawn with ``split_seed`` (default: the model's seed); ``reuse``: trials of another
    fit on this split (see ``Distiller.fit``)."""
    split = split_indices(len(data.y), params.get("seed", 0) if split_seed is None else split_seed)
    est = Distiller(**params).fit(
        frame(data, split.train),
        data.y[split.train],
        frame(data, split.val),
        data.y[split.val],
        progress=progress,
        workdir=workdir,
        reuse=reuse,
    )
    result = scores(est, data, split)
    metrics = {
        "dataset": data.name,
        "regularizer": est.regularizer,
        "lam": float(est.lam_),
        "tuner": est.tuner if est.lam == "auto" else None,
        "student": est.student,
        "seed": est.seed,
        "teacher_r2_test": result["teacher_r2_test"],
        "student_r2_test": result["student_r2_test"],
        "fidelity_r2_test": result["fidelity_r2_test"],
        "complexity": int(est.complexity_),
        "formula": formula.as_text(est.formula_, data.target_name, digits=6),
        "variables": formula.variables(est.formula_, data.target_name),
        "teacher_r2_val": result["teacher_r2_val"],
        "student_r2_val": result["student_r2_val"],
        "fidelity_r2_val": result["fidelity_r2_val"],
        "select": est.select,
        "student_inputs": est.student_inputs,
        "drop_terms": est.drop_terms,
        "front": front_records(est, data, split),
        **ground_truth(est, data, split),
        "student_rows": est.student_rows_,
        "patience": est.patience,
        "keep": est.keep,
        "teacher_epochs": est.training_.epochs_run,
        "teacher_best_epoch": est.training_.best_epoch,
        "rows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "timings": {**est.timings_, "total": sum(est.timings_.values())},
    }
    if est.lam == "auto":
        metrics["tuning"] = {
            "trials": [t.record() for t in est.search_.trials],
            "compute": est.search_.compute(),
        }
    return Fitted(est, metrics)


def baseline_params(params: dict) -> dict:
    """Distiller parameters of the λ = 0 baseline of a fit with ``params``: no penalty (and so no
    penalty options), everything else the same."""
    return {**params, "regularizer": "none", "regularizer_options": None, "lam": 0.0}


def reusable_baseline(fitted: Fitted) -> list[Trial]:
    """The λ = 0 teacher of ``fitted``'s search, for the baseline of the same split and settings."""
    trial = fitted.estimator.search_.reusable(0.0)
    return [trial] if trial else []


def restart_teachers(data: Dataset, params: dict, seeds: Sequence[int], split_seed: int) -> list[Trial]:
    """The teachers ``Distiller(**params, seed=s)`` trains at its fixed λ, for every seed s of
    ``seeds``, trained together on ``split_seed``'s split; hand trial i to the fit with seed s_i
    (``fit_and_score(..., reuse=[trial])``), which then fits and scores only its student."""
    split = split_indices(len(data.y), split_seed)
    search = Search(Distiller(**params).problem(frame(data, split.train), data.y[split.train],
                                                frame(data, split.val), data.y[split.val])[0])  # fmt: skip
    return search.restarts(float(params["lam"]), seeds)


def run(
    data: Dataset,
    params: dict,
    baseline: bool = True,
    progress: Progress | None = None,
    workdir: Path | None = None,
) -> tuple[Fitted, Fitted | None]:
    """The regularized fit and, unless ``baseline`` is False, the same fit with λ = 0 (which is
    the regularized fit itself when λ is already 0). A λ = 0 teacher the tuner trained is the
    baseline's teacher: it is not trained twice."""
    main = fit_and_score(data, params, progress, workdir)
    if not baseline:
        base = None
    elif params["lam"] == 0:
        base = main
    else:
        base = fit_and_score(data, baseline_params(params), progress, reuse=reusable_baseline(main))
    main.metrics["baseline"] = dict(base.metrics) if base else None
    return main, base


def frame(data: Dataset, rows) -> pd.DataFrame:
    """The feature rows ``rows`` as a DataFrame, so that formulas use the column names."""
    return pd.DataFrame(data.X[rows], columns=data.feature_names)


def scores(est: FormulaEstimator, data: Dataset, split: Split) -> dict:
    """Student R² (against the truth) on the validation and test rows and, for a distiller, the
    teacher's R² and the student's fidelity R² (against the teacher)."""
    result = {}
    for part, rows in (("val", split.val), ("test", split.test)):
        student_pred = est.predict(frame(data, rows))
        result[f"student_r2_{part}"] = r2(data.y[rows], student_pred)
        if isinstance(est, Distiller):
            teacher_pred = est.predict_teacher(frame(data, rows))
            result[f"teacher_r2_{part}"] = r2(data.y[rows], teacher_pred)
            result[f"fidelity_r2_{part}"] = r2(teacher_pred, student_pred)
    return result


def front_records(est: FormulaEstimator, data: Dataset, split: Split) -> list[dict]:
    """Each member of ``est``'s front, simplest first: its complexity, validation and test R²
    (against the truth) and, for a distiller, validation fidelity R²; the chosen one marked."""
    X_test = est.student_scaler_.transform(data.X[split.test])
    y_test = est.y_scaler_.transform(data.y[split.test][:, None])[:, 0]  # R² is scale-free
    fidelity = getattr(est, "front_fidelity_val_", [None] * len(est.front_members_))
    return [
        {
            "complexity": member.complexity,
            "student_r2_val": val,
            "student_r2_test": r2(y_test, member.predict(X_test)),
            "fidelity_r2_val": fid,
            "chosen": i == est.chosen_,
        }
        for i, (member, val, fid) in enumerate(zip(est.front_members_, est.front_r2_val_, fidelity))
    ]


def ground_truth(est: FormulaEstimator, data: Dataset, split: Split) -> dict:
    """For a generated problem (``data.formula`` known): test R² against the noiseless target of
    the student (and the teacher), and whether the chosen formula is a symbolic solution (None:
    undecided within the time cap): ``solution`` for the formula shown (``est.formula_``, its
    constants rounded where validation R² allows, as a user reads it), ``solution_full_precision``
    for the same front member with every constant as fitted; nothing for other data."""
    if data.formula is None or data.y_true is None:
        return {}
    rows, truth = split.test, data.y_true[split.test]
    result = {"student_r2_test_true": r2(truth, est.predict(frame(data, rows)))}
    if isinstance(est, Distiller):
        result["teacher_r2_test_true"] = r2(truth, est.predict_teacher(frame(data, rows)))
    columns = dict(zip(data.feature_names, data.X.T))
    for key, shown in (
        ("solution", est.formula_),
        ("solution_full_precision", est.member_formula(est.chosen_)),
    ):
        candidate = groundtruth.as_truth_symbols(shown, data.formula)
        result[key] = groundtruth.symbolic_solution(candidate, data.formula, rows=columns)
    return result


def direct(
    data: Dataset,
    student: str,
    student_options: dict,
    seed: int,
    jobs: int | None = None,
    select: str = fronts.DEFAULT_RULE,
    student_inputs: str = "standardized",
    drop_terms: bool = True,
) -> dict:
    """The student fitted to the true targets of the training rows of ``seed``'s split, its
    formula selected from its front on the validation rows by ``select``, scored as a distilled
    student is (the teacher's entries are None); ``student_inputs`` and ``drop_terms`` as for
    ``DirectRegressor``."""
    split = split_indices(len(data.y), seed)
    est = DirectRegressor(student, student_options, seed, jobs, select, student_inputs, drop_terms).fit(
        frame(data, split.train), data.y[split.train], frame(data, split.val), data.y[split.val]
    )
    result = scores(est, data, split)
    return {
        "lam": None,
        "teacher_r2_test": None,
        "fidelity_r2_test": None,
        "teacher_r2_val": None,
        "student_r2_test": result["student_r2_test"],
        "student_r2_val": result["student_r2_val"],
        "complexity": int(est.complexity_),
        "formula": formula.as_text(est.formula_, data.target_name, digits=6),
        "variables": formula.variables(est.formula_, data.target_name),
        "select": select,
        "student_inputs": student_inputs,
        "drop_terms": drop_terms,
        "front": front_records(est, data, split),
        **ground_truth(est, data, split),
    }


def tune(data: Dataset, params: dict, progress: Progress | None = None, workdir: Path | None = None) -> dict:
    """Run the tuner on the train/val split; report every trial (with its teacher's test R², for
    the reader: the tuner never sees the test rows), the compute spent and the chosen fit."""
    fitted = fit_and_score(data, {**params, "lam": "auto"}, progress, workdir)
    est, metrics = fitted.estimator, fitted.metrics
    test = split_indices(len(data.y), params.get("seed", 0)).test
    trials = [
        {
            **trial.record(),
            "teacher_r2_test": r2(data.y[test], est.predict_teacher(frame(data, test), trial.model)),
        }
        for trial in est.search_.trials
    ]
    return {
        "tuner": est.tuner,
        "dataset": data.name,
        "regularizer": est.regularizer,
        "student": est.student,
        "seed": est.seed,
        "lam": metrics["lam"],
        "trials": trials,
        "compute": est.search_.compute(),
        **{
            k: metrics[k]
            for k in (
                "teacher_r2_test",
                "student_r2_test",
                "fidelity_r2_test",
                "complexity",
                "formula",
                "variables",
            )
        },
    }
