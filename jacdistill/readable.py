"""The formula a person reads: a student's expression in original units, with short constants.

:func:`readable` takes a formula over the data's columns (as ``jacdistill.formula.to_original_units``
gives it) and rows of the data, and returns the expression to show in four steps, each judged by
the formula's R² on those rows. The estimators give it their training and validation rows (never
the test rows): on a few rows a rounding or a dropped term can hide what it costs (on servo's
25 validation rows alone, Operon's formula lost its 0.037·motor_a and had exp(83.34·exp(−1.067·
pgain)) rounded to exp(83.3·exp(−1.07·pgain)) for 0.08 of test R²; with the training rows
beside them it keeps both and gives up 0.0015).

1. **Phases** (exact): inside ``sin``/``cos`` the additive constant of the argument is reduced
   modulo 2π into (−π, π], inside ``tan`` modulo π into (−π/2, π/2]: ``cos(5.678*x + 2474.0)``
   becomes ``cos(5.678*x - 1.575…)``. The new phase is computed in extended precision, so the
   formula's values change by float rounding only. Exact (Integer or Rational) phases are kept.
2. **Constants**: every float gets the fewest significant digits that keep the formula's
   R² (:func:`jacdistill.metrics.r2`) within ``tolerance`` of the unrounded formula's:
   the smallest digit count that works for all constants at once, then, one constant at a time,
   fewer digits where R² still allows. A constant that rounds to an integer is shown as an Integer
   (``1.0*x`` → ``x``, ``x**2.0`` → ``x**2``); thresholds of Piecewise conditions (trees, protected
   division) are constants too. A formula whose unrounded R² is NaN (it blows up on the rows,
   or the target is constant) is returned with its phases wrapped only.
3. **Simplification** (``simplify=True``): two cheap sympy rewrites, ``expand`` on expressions
   of at most 50 nodes, then ``factor_terms`` on those of at most 1 000, each kept only if it has
   fewer nodes (:func:`jacdistill.contracts.count_nodes`) and R² still within ``tolerance``. The
   bounds are on size, not time, so a busy machine shows the same formula as an idle one. The
   constants of a kept rewrite are rounded as in step 2.
4. **Small terms** (``drop_terms=True``, the default): terms of sums, at any depth (not in
   Piecewise conditions), are left out one at a time, those whose absence costs least R² first,
   each only if what is left, rounded again, has fewer nodes and R² still within ``tolerance``;
   eight such tries at most, whatever the time (``benchmarks/drop_terms.py``).

R² is always compared with the unrounded formula's. Rounding costs one ``lambdify``, with the
constants as parameters; the final check, and each rewrite that shortens the formula, one more.

The R² of the expression returned is checked on the rows; were it out of tolerance, the
phase-wrapped formula would be returned with its constants in full. Each float shown prints as the
shortest decimal of its value (``str`` gives ``1.23``, not ``1.23000000000000``): write it with
``jacdistill.formula.as_text(expr, target)``, not with a ``digits`` rounding on top.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import sympy

from jacdistill.contracts import count_nodes, numpy_function
from jacdistill.formula import evaluate
from jacdistill.metrics import r2

# (function, its period as a multiple of π)
_PERIODIC = {sympy.sin: 2, sympy.cos: 2, sympy.tan: 1}
# integers at least this large read better in scientific notation (1.2e+7) than in full
_LARGEST_INTEGER = 1e6
# expand can multiply an expression's size (a product of sums), so it only runs on small ones
_EXPAND_MAX_NODES = 50
# factor_terms grows with size: up to 92 ms on the 817 nodes of the largest formula the smoothness
# study's students gave, 6 ms (median) at 50 nodes or fewer (benchmarks/rewrite_cost.py)
_FACTOR_MAX_NODES = 1000
# terms drop_terms tries to leave out (one lambdify and a rounding search each)
_DROP_TRIES = 8
# what a term left out can leave behind: 1/0, log(0), sqrt(-1.0)
_NOT_REAL = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)


def readable(
    expr: sympy.Expr,
    feature_names: list[str],
    X: np.ndarray,
    y: np.ndarray,
    tolerance: float = 1e-3,
    simplify: bool = True,
    drop_terms: bool = True,
) -> sympy.Expr:
    """The expression to show for ``expr`` (over Symbols named by ``feature_names``, evaluated on
    ``X``'s columns in that order): phases wrapped, constants rounded, lightly simplified
    (see the module docstring)."""
    wrapped = wrap_phases(expr)
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    floats = _floats(wrapped)
    score = _scorer(wrapped, feature_names, floats, X, y)
    base = score([float(f) for f in floats])
    if math.isnan(base):
        return wrapped

    def close(r2_value: float) -> bool:  # False for NaN
        return abs(r2_value - base) <= tolerance

    def shortened(e: sympy.Expr) -> sympy.Expr | None:
        e_floats = _floats(e)
        return _shortened(e, e_floats, _scorer(e, feature_names, e_floats, X, y), close)

    shown = _shortened(wrapped, floats, score, close)
    assert shown is not None  # the constants as they are give R² = base
    full, shown = _simplified(wrapped, shown, shortened) if simplify else (wrapped, shown)
    if drop_terms:
        shown = _without_small_terms(full, shown, shortened, feature_names, X, y)
    display = shown.xreplace({f: _display(float(f)) for f in shown.atoms(sympy.Float)})
    return display if close(r2(y, evaluate(display, feature_names, X))) else wrapped


def wrap_phases(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with the float phase of every sin and cos reduced into (−π, π], of every tan into
    (−π/2, π/2] (step 1 of the module docstring); nested calls are wrapped too."""
    return expr.replace(lambda e: isinstance(e, tuple(_PERIODIC)), _wrap)


def _wrap(call: sympy.Expr) -> sympy.Expr:
    phase, rest = call.args[0].as_coeff_Add()
    half = _PERIODIC[call.func] * math.pi / 2
    if not isinstance(phase, sympy.Float) or abs(float(phase)) <= half:
        return call
    with mpmath.workdps(40):  # k·period is exact to far below a double's rounding
        period = _PERIODIC[call.func] * mpmath.pi
        reduced = mpmath.mpf(float(phase)) - round(float(phase) / float(period)) * period
        # the quotient is rounded in double precision, so a phase near an odd multiple of π can
        # land just outside; the interval is half-open: −π becomes π
        if reduced <= -period / 2:
            reduced += period
        elif reduced > period / 2:
            reduced -= period
        return call.func(rest + sympy.Float(float(reduced)))


def _scorer(expr, feature_names, floats, X, y):
    """R² on the rows as a function of the values of ``floats`` (the constants, or the switches
    of ``_without_small_terms``): one lambdify, with each a parameter, serves every value tried."""
    columns, renaming = _columns(feature_names)
    params = [sympy.Symbol(f"_p{i}") for i in range(len(floats))]
    fn = numpy_function(columns + params, expr.xreplace(renaming | dict(zip(floats, params))))
    cols = list(X.T)

    def score(values: list[float]) -> float:
        with np.errstate(all="ignore"):  # numpy evaluates every branch of a Piecewise
            pred = np.asarray(fn(*cols, *values), dtype=np.float64)
        return r2(y, np.broadcast_to(pred, y.shape))

    return score


def _columns(feature_names: list[str]) -> tuple[list[sympy.Symbol], dict]:
    """Symbols ``_x0 …`` that stand in for the columns in a lambdify, and the renaming to them:
    plain Symbols with safe names, not Dummies, which lambdify renames again, one rebuild of the
    expression each."""
    columns = [sympy.Symbol(f"_x{i}") for i in range(len(feature_names))]
    return columns, {sympy.Symbol(n): c for n, c in zip(feature_names, columns)}


def _floats(expr: sympy.Expr) -> list[sympy.Float]:
    """The floats of ``expr`` in order of appearance, so that they are shortened in a reproducible
    order."""
    return list(dict.fromkeys(a for a in sympy.preorder_traversal(expr) if isinstance(a, sympy.Float)))


def _shortened(expr: sympy.Expr, floats: list[sympy.Float], score, close) -> sympy.Expr | None:
    """``expr`` with its ``floats`` rounded: to the smallest common digit count whose R² (``score``
    of the values) is ``close``, then each to fewer digits while R² stays ``close``; None if R² is
    not ``close`` even with the values as they are."""
    full = [float(f) for f in floats]

    def ok(values: list[float]) -> bool:
        return close(score(values))

    # 17 digits give the values back exactly
    common = next((d for d in range(1, 18) if ok(_rounded(full, [d] * len(full)))), None)
    if common is None:
        return None
    digits = [common] * len(full)
    values = _rounded(full, digits)
    for i in range(len(full)):
        while digits[i] > 1:
            trial = digits[:i] + [digits[i] - 1] + digits[i + 1 :]
            trial_values = _rounded(full, trial)
            if trial_values[i] != values[i] and not ok(trial_values):
                break
            digits, values = trial, trial_values
    return expr.xreplace({f: _number(v) for f, v in zip(floats, values)})


def _rounded(values: list[float], digits: list[int]) -> list[float]:
    return [float(f"{v:.{d - 1}e}") for v, d in zip(values, digits)]


def _simplified(full: sympy.Expr, shown: sympy.Expr, shortened) -> tuple[sympy.Expr, sympy.Expr]:
    """(``full``, ``shown``: ``full`` with its constants ``shortened``), or, where it has fewer
    nodes, what a rewrite gives and that shortened; the rewrites are tried in turn, each on
    expressions up to its size bound. Each works on the constants in full (terms cancel exactly)
    and else on the shown ones (2.0*x + 4.0*y has no common factor, 2*x + 4*y has); the
    constants it makes (-5.324000000000001) are shortened."""
    # expanding first lets terms cancel ((x + 1)*(x - 1) - x**2 → -1); common factors come out after
    rewrites = [(sympy.expand, _EXPAND_MAX_NODES), (sympy.factor_terms, _FACTOR_MAX_NODES)]
    for rewrite, max_nodes in rewrites:
        for source in dict.fromkeys([full, shown]):
            if count_nodes(source) > max_nodes:
                continue
            candidate = rewrite(source)
            if count_nodes(candidate) >= count_nodes(source):  # a cheap test before a lambdify
                continue
            candidate_shown = shortened(candidate)
            if candidate_shown is not None and count_nodes(candidate_shown) < count_nodes(shown):
                full, shown = candidate, candidate_shown
                break
    return full, shown


def _without_small_terms(full, shown, shortened, feature_names, X, y) -> sympy.Expr:
    """``shown`` with terms of ``full``'s sums, at any depth, left out one at a time wherever what
    is left, shortened, keeps R² close and has fewer nodes: an offset of 1e-5 beside
    p·cos θ/(4π·ε·r²) costs its digits to the others, as does 1e-4·x inside a tanh.

    Every term of every sum (outside Piecewise conditions) is multiplied by its own switch, 1 or
    0, in one lambdify, so that the terms whose absence alone costs least R² are tried
    first. Whether one goes is decided after rounding: the constants left, rounded, can make up
    for it (0.973·n·k·T/V + 0.26 → n·k·T/V). At most ``_DROP_TRIES`` terms are tried (one
    lambdify and a rounding search each), a bound on work that, unlike a time cap, gives the same
    formula on a busy machine as on an idle one."""
    switches: list[sympy.Symbol] = []
    switched = _switched(full, switches)
    if not switches:
        return shown
    score = _scorer(switched, feature_names, switches, X, y)
    alone = [score([float(j != i) for j in range(len(switches))]) for i in range(len(switches))]
    order = sorted(range(len(switches)), key=lambda i: (math.isnan(alone[i]), -alone[i]))
    off: set[int] = set()
    for i in order[:_DROP_TRIES]:
        candidate = switched.xreplace({s: int(j not in off | {i}) for j, s in enumerate(switches)})
        if candidate.has(*_NOT_REAL):  # sympy evaluates what numpy could not print
            continue
        candidate_shown = shortened(candidate)
        if candidate_shown is not None and count_nodes(candidate_shown) < count_nodes(shown):
            off, shown = off | {i}, candidate_shown
    return shown


def _switched(expr: sympy.Basic, switches: list[sympy.Symbol]) -> sympy.Basic:
    """``expr`` with every term of every sum multiplied by a new Symbol, appended to
    ``switches``; conditions (of Piecewise) are left as they are."""
    if not expr.args or isinstance(expr, (sympy.core.relational.Relational, sympy.logic.boolalg.Boolean)):
        return expr
    args = [_switched(a, switches) for a in expr.args]
    if isinstance(expr, sympy.Add):
        mine = [sympy.Symbol(f"_s{len(switches) + k}") for k in range(len(args))]
        switches.extend(mine)
        return sympy.Add(*(s * a for s, a in zip(mine, args)))
    return expr.func(*args)


def _number(value: float) -> sympy.Expr:
    """A rounded constant as sympy holds it: an Integer where it is one, else a full-precision
    Float (arithmetic on a Float of few digits would lose precision)."""
    if value.is_integer() and abs(value) < _LARGEST_INTEGER:
        return sympy.Integer(int(value))
    return sympy.Float(value)


def _display(value: float) -> sympy.Expr:
    """A constant as shown: an Integer, or a Float whose precision is its shortest decimal's
    digits, so that it prints as that decimal (and lambdify writes the same number)."""
    number = _number(value)
    if number.is_Integer:
        return number
    mantissa = np.format_float_scientific(abs(value), unique=True, trim="-").split("e")[0]
    shown = sympy.Float(value, len(mantissa.replace(".", "")))
    # in scientific notation one digit prints as 1.e-7: two print 1.0e-7
    return sympy.Float(value, 2) if ".e" in str(shown) else shown
