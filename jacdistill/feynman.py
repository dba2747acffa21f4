"""Ground-truth regression problems generated from the AI Feynman equation table.

``datasets/feynman_equations.csv`` lists 100 physics formulas (Udrescu & Tegmark 2020), each with
its variables' names and ranges (see ``datasets/README.md`` for the copy's source). A problem is
one equation sampled ``n`` times:

- inputs: uniform in each variable's listed [low, high), drawn first from
  ``numpy.random.default_rng(seed)``, so one seed gives the same inputs at every noise level;
- the noiseless target: the formula evaluated on them (parsed with sympy, lambdified to numpy);
- the target: the noiseless one plus Gaussian noise of standard deviation
  ``noise × sqrt(mean(y_true²))`` (SRBench's definition; noise 0 adds nothing).

The table's ``# variables`` column is wrong for a few rows (I.18.12, I.38.12, II.37.1, ...): the
listed variables are what counts. Every listed range lies in [0, ∞), so every variable is positive
on the data (almost surely: a low of 0 is drawn with probability 0).
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
import re
from dataclasses import dataclass, fields
from importlib import resources

import numpy as np
import sympy
from sympy.parsing.sympy_parser import parse_expr

from jacdistill.options import JacdistillError

PREFIX = "feynman:"
MAX_ROWS = 1_000_000  # 9 variables × 10⁶ rows is 72 MB; more is a typo rather than a plan
MIN_ROWS = 20  # as jacdistill.data.MIN_ROWS (data imports this module, not the other way round)
EXAMPLE = "feynman:I.6.2?n=1000&noise=0.01&seed=0"
# the table's function names that sympy spells otherwise
FUNCTIONS = {"arcsin": sympy.asin, "ln": sympy.log}


@dataclass(frozen=True)
class Equation:
    name: str  # the table's Filename, e.g. I.6.2
    output: str  # the target's name
    text: str  # the formula as the table writes it
    variables: tuple[tuple[str, float, float], ...]  # (name, low, high)

    @property
    def symbols(self) -> list[sympy.Symbol]:
        return [sympy.Symbol(name) for name, _, _ in self.variables]

    def formula(self) -> sympy.Expr:
        """The formula over plain Symbols named as the variables (a variable ``I`` or ``gamma`` is
        a Symbol, not sympy's constant or function)."""
        names = {s.name: s for s in self.symbols}
        return parse_expr(self.text, local_dict={**FUNCTIONS, **names})


@functools.cache
def equations() -> dict[str, Equation]:
    """The table's equations by name, in its order."""
    text = (resources.files("jacdistill") / "datasets" / "feynman_equations.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    table = {}
    for row in rows:
        variables = tuple(
            (row[f"v{i}_name"], float(row[f"v{i}_low"]), float(row[f"v{i}_high"]))
            for i in range(1, 11)
            if row.get(f"v{i}_name")
        )
        table[row["Filename"]] = Equation(row["Filename"], row["Output"], row["Formula"], variables)
    return table


def equation(name: str) -> Equation:
    """The equation ``name``; an unknown one is a JacdistillError naming the closest."""
    table = equations()
    if name not in table:
        close = difflib.get_close_matches(name, table, n=3, cutoff=0.5)
        hint = f"closest: {', '.join(close)}; " if close else ""
        listing = f"`jacdistill datasets --feynman` lists all {len(table)}"
        raise JacdistillError(f"unknown Feynman equation '{name}' ({hint}{listing})")
    return table[name]


@dataclass(frozen=True)
class Spec:
    """A parsed ``feynman:EQUATION?n=…&noise=…&seed=…``."""

    equation: str
    n: int = 1000
    noise: float = 0.0
    seed: int = 0

    @property
    def label(self) -> str:
        """The problem's name, safe in a file name: ``feynman-I.6.2-n100-noise0.1``; keys at their
        default are left out, so equal problems have equal names."""
        parts = [f"feynman-{self.equation}"]
        if self.n != DEFAULTS["n"]:
            parts.append(f"n{self.n}")
        if self.noise != DEFAULTS["noise"]:
            parts.append(f"noise{_number(self.noise)}")
        if self.seed != DEFAULTS["seed"]:
            parts.append(f"seed{self.seed}")
        return "-".join(parts)


# the keys a spec may set, with their defaults
DEFAULTS: dict[str, float] = {f.name: f.default for f in fields(Spec) if f.name != "equation"}  # type: ignore[misc]


def _number(value: float) -> str:
    """The shortest text that reads back as ``value`` (repr), without a trailing ``.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def parse(spec: str) -> Spec:
    """``feynman:EQUATION[?KEY=VALUE&…]`` (keys n, noise, seed) -> :class:`Spec`; a bad one is a
    JacdistillError saying what is wrong and what is allowed."""
    if not spec.startswith(PREFIX):
        raise JacdistillError(f"'{spec}' is not a Feynman spec; e.g. {EXAMPLE}")
    name, _, query = spec[len(PREFIX) :].partition("?")
    if not name:
        raise JacdistillError(f"'{spec}' names no equation; e.g. {EXAMPLE}")
    equation(name)
    values: dict[str, object] = {}
    for pair in query.split("&") if query else ():
        key, equals, text = pair.partition("=")
        if not equals or not key:
            raise JacdistillError(f"'{spec}': expected KEY=VALUE, got '{pair}'; e.g. {EXAMPLE}")
        if key not in DEFAULTS:
            raise JacdistillError(f"'{spec}': unknown key '{key}'; keys: {', '.join(DEFAULTS)}")
        if key in values:
            raise JacdistillError(f"'{spec}': key '{key}' given twice")
        values[key] = _value(spec, key, text)
    return Spec(name, **values)  # type: ignore[arg-type]


ALLOWED = {
    "n": f"an integer from {MIN_ROWS} to {MAX_ROWS}",
    "noise": "a finite number >= 0 (the noise's standard deviation over the target's RMS)",
    "seed": "an integer >= 0",
}


def _value(spec: str, key: str, text: str) -> int | float:
    try:
        value: int | float = float(text) if key == "noise" else int(text)
    except ValueError:
        value = math.nan
    ok = {
        "n": lambda v: MIN_ROWS <= v <= MAX_ROWS,
        "noise": lambda v: math.isfinite(v) and v >= 0,
        "seed": lambda v: v >= 0,
    }[key]
    if not re.fullmatch(r"[0-9eE.+-]+|inf|nan", text, re.IGNORECASE) or math.isnan(value) or not ok(value):
        raise JacdistillError(f"'{spec}': {key} must be {ALLOWED[key]}, got '{text}'")
    return value


def evaluator(eq: Equation):
    """numpy function of the variables' columns (in the table's order) -> the formula's values."""
    return sympy.lambdify(eq.symbols, eq.formula(), "numpy")


def sample(spec: Spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X n×d, y, y_true) of the problem ``spec`` (see the module docstring)."""
    eq = equation(spec.equation)
    rng = np.random.default_rng(spec.seed)
    low, high = (np.array([v[i] for v in eq.variables]) for i in (1, 2))
    X = rng.uniform(low, high, size=(spec.n, len(eq.variables)))
    y_true = np.broadcast_to(np.asarray(evaluator(eq)(*X.T), dtype=np.float64), (spec.n,)).copy()
    y = y_true.copy()
    if spec.noise > 0:
        y += rng.normal(0.0, spec.noise * math.sqrt(np.mean(y_true**2)), spec.n)
    return X, y, y_true
