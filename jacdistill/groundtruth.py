"""Scores against a known formula, for generated problems (``Dataset.formula``, ``Dataset.y_true``).

- Accuracy on the noiseless target: ``jacdistill.metrics.r2(data.y_true[rows], prediction)``.
- :func:`symbolic_solution`: SRBench's "symbolic solution": the candidate ``c`` solves the truth
  ``t`` when ``t - c`` simplifies to a constant, or ``c / t`` to a non-zero constant, so a missing
  offset or scale counts as found.

Numbers are compared at ``digits`` significant digits (default 4), on both sides alike: each
constant subexpression (a float, ``pi``, ``sqrt(2*pi)``, the numbers of a product or sum taken
together) becomes one number, rounded to ``digits`` significant digits and made an exact rational
(``2.0003`` → ``2``, ``3.14159`` and ``pi`` → ``1571/500``), so a student's ``3.14159*x`` matches
``pi*x``, its ``x**2.0`` matches ``x**2``, and simplification runs in exact arithmetic. SRBench
rounds to 6 decimal places instead; significant digits do not depend on a constant's scale, and 4
is what a student fitted to noisy data can hope to get right. Two constants that round to
different numbers at a rounding boundary (0.33335 against 0.33334) do not match, and a term with a
tiny coefficient (``1e-9*x**2``) is not dropped: such a candidate is no solution.

Variables are taken to be positive (every Feynman range lies in [0, ∞)), so ``sqrt(x**2)`` is
``x``; pass ``positive=False`` where a truth has signed variables.

Most candidates are plainly no solution, and simplifying them is the slow part (a 20-node formula
with ``exp`` and ``sin`` often runs past a 30 s cap): given ``rows`` (values of the truth's
variables, e.g. the problem's data), :func:`plainly_apart` first fits the candidate to the truth
numerically as "truth + constant" and as "constant × truth"; where both misfits exceed 1 % (a
hundred times what rounding constants to 4 digits can cause) the answer is no, in milliseconds.
Anything closer goes to sympy.

Simplification can run for ever, so it runs in a child Python process that is killed after
``timeout_s`` seconds: unlike ``signal.alarm`` this works in any thread (a Dask worker runs tasks
in threads) and stops sympy even inside long arithmetic, and unlike ``multiprocessing`` it works in
daemon processes (Dask's workers are) and runs no Python in a fork of a process that holds threads.
It costs about half a second per call (a Python start and sympy's import).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Mapping

import numpy as np
import sympy

DIGITS = 4
TIMEOUT_S = 30.0
SCREEN_TOLERANCE = 1e-2  # relative misfit; rounding constants to DIGITS digits moves values by ~1e-4


def as_truth_symbols(
    candidate: sympy.Expr | str, truth: sympy.Expr, variables: dict[str, str] | None = None
) -> sympy.Expr:
    """The candidate over the truth's Symbols: each variable whose name is a truth variable's
    becomes that Symbol, whatever assumptions it carried (others stay, and make it no solution).

    ``candidate`` is a sympy expression over the data's column names (``Distiller.formula_``), or
    a written formula (``formula.txt``'s first line, or metrics.json's ``"formula"``) with its
    ``variables`` mapping (identifier -> column name, :func:`jacdistill.formula.variables`); the
    text right of `` = `` is parsed, as :mod:`jacdistill.formula` describes.
    """
    variables = variables or {}
    if isinstance(candidate, str):
        text = candidate.split(" = ", 1)[1] if " = " in candidate else candidate
        candidate = sympy.sympify(
            text, locals={ident: sympy.Symbol(name) for ident, name in variables.items()}
        )
        variables = {}  # the parse has renamed them
    by_name = {s.name: s for s in truth.free_symbols}
    names = {s: variables.get(s.name, s.name) for s in candidate.free_symbols}
    return candidate.xreplace({s: by_name.get(name, sympy.Symbol(name)) for s, name in names.items()})


def symbolic_solution(
    candidate: sympy.Expr,
    truth: sympy.Expr,
    timeout_s: float | None = TIMEOUT_S,
    digits: int = DIGITS,
    positive: bool = True,
    rows: Mapping[str, np.ndarray] | None = None,
) -> bool | None:
    """Whether ``candidate`` is a symbolic solution of ``truth`` (see the module docstring), both
    over Symbols named alike (:func:`as_truth_symbols`); None when it could not be decided: the
    time cap ran out, or sympy failed. ``timeout_s`` None decides in this process, with no cap.
    ``rows`` (variable name -> values): screen with :func:`plainly_apart` first."""
    if rows is not None and plainly_apart(candidate, truth, rows):
        return False
    if timeout_s is None:
        try:
            return _decide(candidate, truth, digits, positive)
        except Exception:  # sympy gives up on some expressions (NotImplementedError, ...)
            return None
    payload = pickle.dumps((candidate, truth, digits, positive))
    command = [sys.executable, "-c", "from jacdistill.groundtruth import _child; _child()"]
    try:
        done = subprocess.run(command, input=payload, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:  # run() has killed the child
        return None
    try:
        return json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        return None


def plainly_apart(
    candidate: sympy.Expr,
    truth: sympy.Expr,
    rows: Mapping[str, np.ndarray],
    tolerance: float = SCREEN_TOLERANCE,
) -> bool:
    """Whether, on ``rows``, ``candidate`` is plainly neither the truth plus a constant nor a
    constant times it: the least-squares fit of each form leaves a relative misfit above
    ``tolerance``. Such a candidate is no solution. False (not shown apart) where there are no
    variables or one has no values, fewer than 10 rows give finite values of both, or the truth is
    constant on them."""
    from jacdistill.contracts import numpy_function  # here: symbolic_solution's child stays light

    symbols = sorted(truth.free_symbols | candidate.free_symbols, key=lambda s: s.name)
    if not symbols or any(s.name not in rows for s in symbols):
        return False
    columns = [np.asarray(rows[s.name], dtype=np.float64) for s in symbols]
    with np.errstate(all="ignore"):
        c, t = (np.broadcast_to(np.asarray(numpy_function(symbols, e)(*columns), dtype=np.float64),
                                columns[0].shape) for e in (candidate, truth))  # fmt: skip
        finite = np.isfinite(c) & np.isfinite(t)
        c, t = c[finite], t[finite]
        spread = np.linalg.norm(t - t.mean()) if len(t) else 0.0
        if len(t) < 10 or spread == 0:
            return False
        offset = c - t
        offset_misfit = np.linalg.norm(offset - offset.mean()) / spread
        factor = (c @ t) / (t @ t)
        factor_misfit = np.linalg.norm(c - factor * t) / np.linalg.norm(c)  # nan for c = 0: not apart
    return bool(offset_misfit > tolerance and factor_misfit > tolerance)


def _child() -> None:
    """The child process of :func:`symbolic_solution`: a pickled question on stdin, the JSON
    answer (true, false or null) on stdout."""
    candidate, truth, digits, positive = pickle.loads(sys.stdin.buffer.read())
    try:
        answer = _decide(candidate, truth, digits, positive)
    except Exception:
        answer = None
    sys.stdout.write(json.dumps(answer))


def _decide(candidate: sympy.Expr, truth: sympy.Expr, digits: int, positive: bool) -> bool:
    assumed = {"positive": True} if positive else {"real": True}  # one Symbol per name on both sides
    both = lambda e: e.xreplace({s: sympy.Symbol(s.name, **assumed) for s in e.free_symbols})
    c = rounded(sympy.simplify(both(sympy.sympify(candidate))), digits)
    t = rounded(both(sympy.sympify(truth)), digits)
    if _constant(sympy.simplify(t - c)):
        return True
    ratio = sympy.simplify(c / t)
    return _constant(ratio) and ratio != 0


def _constant(expr: sympy.Expr) -> bool:
    """A finite number (after simplification: no variable left)."""
    return not expr.free_symbols and bool(expr.is_finite)


def rounded(expr: sympy.Expr, digits: int = DIGITS) -> sympy.Expr:
    """``expr`` with each constant subexpression (the numbers of a sum or product taken together)
    one exact rational of ``digits`` significant digits."""
    if not expr.args and not expr.is_number:
        return expr
    if expr.is_number:
        return _round(expr, digits)
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        numbers = [a for a in expr.args if a.is_number]
        rest = [rounded(a, digits) for a in expr.args if not a.is_number]
        if numbers:
            rest.insert(0, _round(expr.func(*numbers), digits))
        return expr.func(*rest)
    return expr.func(*(rounded(a, digits) for a in expr.args))


def _round(number: sympy.Expr, digits: int) -> sympy.Expr:
    value = sympy.N(number, 30)
    if not (value.is_real and value.is_finite):
        return number  # complex, infinite or undefined: left for simplify to judge
    return sympy.Rational(str(sympy.Float(value, digits)))  # the decimal, not the binary fraction
