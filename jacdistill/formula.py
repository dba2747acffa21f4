"""Student expressions in the data's own units, as sympy, text and LaTeX."""

from __future__ import annotations

import numpy as np
import sympy

from jacdistill.contracts import variables
from jacdistill.data import Standardizer


def to_original_units(
    expr: sympy.Expr, x_scaler: Standardizer, y_scaler: Standardizer, feature_names: list[str]
) -> sympy.Expr:
    """Undo the standardization: substitute x_i = (X_i - mean_i)/scale_i, return y·scale + mean."""
    names = [sympy.Symbol(name) for name in feature_names]
    standardized = {
        x: (X - sympy.Float(m)) / sympy.Float(s)
        for x, X, m, s in zip(variables(len(names)), names, x_scaler.mean, x_scaler.scale)
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


def as_text(expr: sympy.Expr, target: str, digits: int | None = None) -> str:
    return f"{target} = {sympy.sstr(rounded(expr, digits) if digits else expr)}"


def as_latex(expr: sympy.Expr, target: str, digits: int = 6) -> str:
    return f"{sympy.latex(sympy.Symbol(target))} = {sympy.latex(rounded(expr, digits))}"


def evaluate(expr: sympy.Expr, feature_names: list[str], X: np.ndarray) -> np.ndarray:
    """Evaluate an original-units expression on raw inputs (n×d), as float64 (n,)."""
    fn = sympy.lambdify([sympy.Symbol(name) for name in feature_names], expr, "numpy")
    with np.errstate(all="ignore"):  # numpy evaluates every branch of a Piecewise
        values = fn(*np.asarray(X, dtype=np.float64).T)
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (len(X),)).copy()
