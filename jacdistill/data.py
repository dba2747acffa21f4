"""Tabular regression data: bundled datasets, CSV/Parquet files, generated ground-truth problems,
validation and splitting."""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from jacdistill.options import JacdistillError

if TYPE_CHECKING:  # the CLI loads data before sympy, which only a generated problem needs
    import sympy

MIN_ROWS = 20
SPLIT = {"train": 0.70, "val": 0.15, "test": 0.15}  # fractions of the rows, drawn with the seed


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray  # float64, n×d
    y: np.ndarray  # float64, n
    feature_names: list[str]
    target_name: str
    # generated problems only (None for real data): the target without its noise (n), and the true
    # formula, a sympy expression over plain Symbols named as the features; jacdistill.groundtruth
    # scores against them
    y_true: np.ndarray | None = None
    formula: sympy.Expr | None = None


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indices
    val: np.ndarray
    test: np.ndarray


def _bundled_dir():
    return resources.files("jacdistill") / "datasets"


def bundled_datasets() -> list[dict]:
    """The manifest of the datasets shipped with jacdistill (name, rows, features, target, ...)."""
    with (_bundled_dir() / "MANIFEST.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["rows"], row["features"] = int(row["rows"]), int(row["features"])
    return rows


def bundled_entry(name: str) -> dict:
    """The manifest row of the bundled dataset ``name``; an unknown name is a JacdistillError."""
    entries = {row["name"]: row for row in bundled_datasets()}
    if name not in entries:
        raise JacdistillError(f"unknown dataset '{name}'; bundled: {', '.join(sorted(entries))}")
    return entries[name]


FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".txt", ".tsv", ".dat")  # a spec that is meant as a file


def load_spec(spec: str, target: str | None = None) -> Dataset:
    """The data set a spec names; ``run --dataset``, ``tune --dataset`` and a sweep's ``datasets``
    all take one:

    - ``NAME``: a bundled dataset (``jacdistill datasets`` lists them);
    - ``feynman:EQUATION[?n=N&noise=LEVEL&seed=S]``: a problem generated from the AI Feynman
      equation ``EQUATION`` (``jacdistill datasets --feynman`` lists them), e.g.
      ``feynman:I.6.2?n=1000&noise=0.01&seed=0``: N rows (default 1000, 20 to 10⁶) drawn uniformly
      in the variables' ranges with ``numpy.random.default_rng(S)`` (default 0), target noise of
      standard deviation LEVEL × the noiseless target's RMS (default 0); see :mod:`jacdistill.feynman`;
    - ``PATH``: a CSV or Parquet file (by its suffix .parquet or .pq; any other is read as CSV),
      if it exists, or holds a ``/``, or ends in a data suffix (else: an unknown name).

    ``target`` names the target column of a file (default: the last column); a bundled or generated
    data set has its own. The Dataset's ``name`` is :func:`spec_name`.
    """
    if spec.startswith("feynman:"):
        from jacdistill import feynman

        problem = feynman.parse(spec)
        eq = feynman.equation(problem.equation)
        X, y, y_true = feynman.sample(problem)
        frame = pd.DataFrame(X, columns=[name for name, _, _ in eq.variables]).assign(**{eq.output: y})
        table = from_frame(frame, None, problem.label)
        table = replace(table, y_true=y_true, formula=eq.formula())
    elif spec in {row["name"] for row in bundled_datasets()}:
        table = load_bundled(spec)
    elif Path(spec).exists() or "/" in spec or Path(spec).suffix.lower() in FILE_SUFFIXES:
        return load_file(spec, target)
    else:
        raise JacdistillError(unknown_spec(spec))
    if target is not None and target != table.target_name:
        raise JacdistillError(
            f"dataset '{spec}' has target '{table.target_name}'; --target names a column of a data file"
        )
    return table


def unknown_spec(spec: str) -> str:
    from jacdistill import feynman

    names = ", ".join(sorted(row["name"] for row in bundled_datasets()))
    hint = f"; did you mean feynman:{spec}?" if spec in feynman.equations() else ""
    return (
        f"unknown dataset '{spec}': give a bundled name ({names}), a CSV/Parquet file, "
        f"or feynman:EQUATION (see `jacdistill datasets --help`){hint}"
    )


def spec_name(spec: str) -> str:
    """The name of the data set ``spec`` names (see :func:`load_spec`), without loading it: a
    bundled name itself, a file's stem, ``feynman-I.6.2-n100-noise0.1`` for
    ``feynman:I.6.2?n=100&noise=0.1``. It names run directories and sweep trial files, so it holds
    no ``/`` (nor ``?``, ``&``, ``=`` or ``:`` for a generated problem)."""
    if spec.startswith("feynman:"):
        from jacdistill import feynman

        return feynman.parse(spec).label
    if spec in {row["name"] for row in bundled_datasets()}:
        return spec
    return Path(spec).stem


def load_bundled(name: str) -> Dataset:
    with resources.as_file(_bundled_dir() / bundled_entry(name)["file"]) as path:
        return load_file(path, target=None, name=name)


def load_file(path: str | Path, target: str | None = None, name: str | None = None) -> Dataset:
    """Read a CSV or Parquet table; ``target`` names the target column (default: the last)."""
    path = Path(path)
    if not path.is_file():
        raise JacdistillError(f"data file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
            # pandas renames a repeated header (a, a -> a, a.1): read the header as it is written
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
            names = [str(c) for c in header.iloc[0]] if len(header) else []
            repeated = duplicated(names)
            if repeated is not None:
                raise JacdistillError(f"{path}: column name '{repeated}' appears twice; rename one")
            unnamed = [i + 1 for i, name in enumerate(names) if not name.strip()]
            if unnamed and len(names) > 1:  # pandas would call it "Unnamed: …"
                raise JacdistillError(f"{path}: column {unnamed[0]} has no name in the header; name it")
    except pd.errors.EmptyDataError:
        raise JacdistillError(f"data file is empty: {path}") from None
    except JacdistillError:
        raise
    except Exception as exc:
        raise JacdistillError(f"cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    return from_frame(frame, target, name or path.stem)


def duplicated(names: list[str]) -> str | None:
    """The first name that appears more than once, or None."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def from_frame(frame: pd.DataFrame, target: str | None, name: str) -> Dataset:
    """Validate a table (numeric, finite, enough rows, non-constant target) and split off the target."""
    if frame.shape[1] < 2:
        hint = "; is it comma-separated?" if any(sep in str(frame.columns[0]) for sep in "\t; ") else ""
        raise JacdistillError(
            f"{name}: need at least one feature column and a target column, "
            f"found {frame.shape[1]} column(s){hint}"
        )
    columns = [str(c) for c in frame.columns]
    repeated = duplicated(columns)
    if repeated is not None:
        raise JacdistillError(f"{name}: column name '{repeated}' appears twice; rename one")
    frame.columns = columns
    target = columns[-1] if target is None else target
    if target not in columns:
        raise JacdistillError(f"{name}: no column '{target}'; columns: {', '.join(columns)}")
    if len(frame) < MIN_ROWS:
        raise JacdistillError(f"{name}: {len(frame)} rows; need at least {MIN_ROWS}")
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            raise JacdistillError(
                f"{name}: column '{column}' is not numeric "
                f"(e.g. '{frame[column].iloc[0]}'); encode it as numbers first"
            )
    values = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        column = columns[int(np.nonzero(bad.any(axis=0))[0][0])]
        raise JacdistillError(
            f"{name}: {int(bad.sum())} missing or infinite value(s), "
            f"first in column '{column}'; clean or drop those rows first"
        )
    unscalable = scale_problem(values)
    if unscalable is not None:
        raise JacdistillError(f"{name}: {scale_message(values, unscalable, repr(columns[unscalable]))}")
    y = frame[target].to_numpy(dtype=np.float64)
    if np.ptp(y) == 0:
        raise JacdistillError(f"{name}: target '{target}' is constant; nothing to learn")
    features = [c for c in columns if c != target]
    return Dataset(name, frame[features].to_numpy(dtype=np.float64), y, features, target)


def scale_problem(values: np.ndarray) -> int | None:
    """The first column (of an n×d array) whose mean, standard deviation or standardized values
    are not finite in float64 (values near 1e154 and beyond square to inf), or None."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        mean, scale = values.mean(axis=0), values.std(axis=0)
        ok = np.isfinite(mean) & np.isfinite(scale)
        ok &= (scale > 0) | (np.ptp(values, axis=0) == 0)  # a spread whose square underflows to 0
        spread = np.where(scale > 0, scale, 1.0)
        ok &= np.isfinite((values - mean) / spread).all(axis=0)
    bad = np.nonzero(~ok)[0]
    return int(bad[0]) if len(bad) else None


def scale_message(values: np.ndarray, column: int, name: str) -> str:
    largest = float(np.abs(values[:, column]).max())
    size = "large" if largest > 1 else "small"
    return (
        f"column {name} has values up to {largest:.3g}, too {size} to standardize in float64 "
        f"(its variance {'overflows' if size == 'large' else 'underflows'}); rescale it"
    )


def split_indices(n: int, seed: int, val: float = SPLIT["val"], test: float = SPLIT["test"]) -> Split:
    """A seeded random train/val/test partition of ``range(n)``."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test), round(n * val)
    return Split(
        train=np.sort(order[n_test + n_val :]),
        val=np.sort(order[n_test : n_test + n_val]),
        test=np.sort(order[:n_test]),
    )


@dataclass(frozen=True)
class Standardizer:
    """Affine map to zero mean and unit variance, fitted on training data only."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        """Fitted on ``values`` (n×d); a column whose mean or variance overflows float64 is a
        JacdistillError (standardizing it would turn it into zeros or NaN)."""
        column = scale_problem(values)
        if column is not None:
            raise JacdistillError(scale_message(values, column, str(column)))
        scale = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.scale

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.scale + self.mean
