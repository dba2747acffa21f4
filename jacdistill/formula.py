"""Student expressions in the data's own units, as sympy, text and LaTeX.

In memory (``est.formula_``) the expression is over sympy Symbols named after the data's columns,
whatever those names are. Text and LaTeX never carry the names themselves: they are written over
*identifiers*, one per name, so that ``sympy.sympify`` or ``parse_expr`` reads a written formula
without running anything and gives plain Symbols, and a formula never reads a column ``E`` as
Euler's number or ``sin`` as the sine:

- a name that is already a safe identifier (ASCII letters, digits and ``_``, not starting with a
  digit or ``_``, not a Python keyword or builtin, nor a name ``from sympy import *`` defines) is
  kept as it is: ``frequency`` stays ``frequency``;
- any other is transliterated to ASCII, each run of other characters becomes ``_`` and, if the
  result is still not safe (empty, a number, a reserved name), it gets the prefix ``x_``:
  ``p (kPa)`` → ``p_kPa``, ``température`` → ``temperature``, ``E`` → ``x_E``, ``1.5`` → ``x_1_5``;
- the variables' identifiers also avoid the names of numpy and math (and those modules' own
  names), so that ``sympy.lambdify`` evaluates a parsed formula over them; the target's
  identifier, which only labels the left-hand side, need not (a target ``power`` stays ``power``);
- identifiers that would coincide get ``_2``, ``_3``, … in turn: the target first, then the
  formula's variables whose names are kept, then the others, each sorted by name.

:func:`variables` maps each identifier to the name it stands for, the target's first.
``formula.txt`` holds the line ``target = expression`` (constants in full precision), then the
line ``# variables: {...}``, that mapping as a JSON object; ``metrics.json`` holds the formula
(constants to 6 significant digits) under ``"formula"`` and the mapping under ``"variables"``.
To read a formula back: parse the text right of the first `` = `` with ``sympy.sympify``, then
replace each Symbol named by an identifier with one named by its column.
"""

from __future__ import annotations

import builtins
import json
import keyword
import math
import re
import unicodedata

import numpy as np
import sympy

from jacdistill import contracts
from jacdistill.data import Standardizer

# Names a parsed formula must not use: what sympy's parser resolves to something other than a new
# Symbol; a variable's identifier also avoids what numpy and math evaluation resolves.
PARSER_NAMES = frozenset([*keyword.kwlist, *keyword.softkwlist, *dir(builtins), *sympy.__all__])
EVALUATOR_NAMES = PARSER_NAMES | frozenset(
    [*np.__all__, *dir(math), "np", "numpy", "math", "mpmath", "scipy", "sympy"]
)


def to_original_units(
    expr: sympy.Expr, x_scaler: Standardizer, y_scaler: Standardizer, feature_names: list[str]
) -> sympy.Expr:
    """Undo the standardization: substitute x_i = (X_i - mean_i)/scale_i, return y·scale + mean."""
    names = [sympy.Symbol(name) for name in feature_names]
    standardized = {
        x: (X - sympy.Float(m)) / sympy.Float(s)
        for x, X, m, s in zip(contracts.variables(len(names)), names, x_scaler.mean, x_scaler.scale)
    }
    scale, shift = sympy.Float(y_scaler.scale[0]), sympy.Float(y_scaler.mean[0])

    def unscale(e):  # into the leaves of a tree, so each leaf reads in target units
        if isinstance(e, sympy.Piecewise):
            return sympy.Piecewise(*((unscale(value), cond) for value, cond in e.args))
        return e * scale + shift

    out = unscale(expr.xreplace(standardized))
    out = out.replace(lambda e: isinstance(e, sympy.core.relational.Relational), _isolate)
    return out.xreplace({f: sympy.Integer(1) for f in out.atoms(sympy.Float) if f == 1})


def _isolate(rel):
    """``a*X + b <= c`` -> ``X <= (c - b)/a`` (flipped when a < 0); other relations unchanged."""
    diff = rel.lhs - rel.rhs
    if len(diff.free_symbols) != 1:
        return rel
    (symbol,) = diff.free_symbols
    slope = diff.diff(symbol)
    if slope.free_symbols or slope == 0 or not diff.is_polynomial(symbol):
        return rel
    bound = -(diff - slope * symbol).expand() / slope
    return rel.func(symbol, bound) if slope > 0 else rel.reversed.func(symbol, bound)


def rounded(expr: sympy.Expr, digits: int = 4) -> sympy.Expr:
    """The expression with every constant rounded to ``digits`` significant digits, for display."""
    return expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)})


def variables(expr: sympy.Expr, target: str) -> dict[str, str]:
    """Each identifier of the written formula and the name it stands for: the target's first, then
    those of the variables of ``expr`` (see the module docstring)."""
    target_id, renaming = _renaming(expr, target)
    return {target_id: target} | {ident.name: symbol.name for symbol, ident in renaming.items()}


def _renaming(expr: sympy.Expr, target: str) -> tuple[str, dict[sympy.Symbol, sympy.Symbol]]:
    """The target's identifier, and a Symbol named by its identifier for each variable of ``expr``."""
    taken: set[str] = set()
    target_id = _identifier(target, PARSER_NAMES, taken)
    # names that are safe as they are come first, so that they keep themselves
    symbols = sorted(expr.free_symbols, key=lambda s: (not _is_safe(s.name, EVALUATOR_NAMES), s.name))
    return target_id, {s: sympy.Symbol(_identifier(s.name, EVALUATOR_NAMES, taken)) for s in symbols}


def _identifier(name: str, reserved: frozenset[str], taken: set[str]) -> str:
    """A safe identifier for ``name``, not in ``taken`` (which then holds it too)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    word = re.sub(r"[^0-9A-Za-z]+", "_", ascii_name).strip("_")
    base = word if _is_safe(word, reserved) else f"x_{word}".rstrip("_")
    ident, n = base, 1
    while ident in taken or not _is_safe(ident, reserved):
        n += 1
        ident = f"{base}_{n}"
    taken.add(ident)
    return ident


def _is_safe(word: str, reserved: frozenset[str]) -> bool:
    return word.isascii() and word.isidentifier() and not word.startswith("_") and word not in reserved


def as_text(expr: sympy.Expr, target: str, digits: int | None = None) -> str:
    """``target = expression`` over identifiers, constants rounded to ``digits`` (None: all)."""
    target_id, renaming = _renaming(expr, target)
    expr = expr.xreplace(renaming)
    return f"{target_id} = {sympy.sstr(rounded(expr, digits) if digits else expr)}"


def as_latex(expr: sympy.Expr, target: str, digits: int = 6) -> str:
    target_id, renaming = _renaming(expr, target)
    return f"{sympy.latex(sympy.Symbol(target_id))} = {sympy.latex(rounded(expr.xreplace(renaming), digits))}"


def file_text(expr: sympy.Expr, target: str) -> str:
    """``formula.txt``: the formula in full precision, then ``# variables:`` and its mapping as JSON."""
    return f"{as_text(expr, target)}\n# variables: {json.dumps(variables(expr, target))}\n"


def evaluate(expr: sympy.Expr, feature_names: list[str], X: np.ndarray) -> np.ndarray:
    """Evaluate an original-units expression on raw inputs (n×d), as float64 (n,). The columns
    stand in by position, as dummy symbols: any names work, ``sin`` or ``numpy`` included."""
    by_position = {sympy.Symbol(name): sympy.Dummy() for name in feature_names}
    fn = contracts.numpy_function(list(by_position.values()), expr.xreplace(by_position))
    with np.errstate(all="ignore"):  # numpy evaluates every branch of a Piecewise
        values = fn(*np.asarray(X, dtype=np.float64).T)
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (len(X),)).copy()
