"""Ground-truth scores: SRBench's symbolic solution, with rounding and a time cap."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import sympy
from sympy import Piecewise, cos, exp, log, pi, sin, sqrt

from jacdistill import feynman, formula
from jacdistill.data import load_spec
from jacdistill.groundtruth import as_truth_symbols, plainly_apart, rounded, symbolic_solution
from jacdistill.metrics import r2

x, y, sigma, theta = sympy.symbols("x y sigma theta")
GAUSS = feynman.equation("I.6.2").formula()  # exp(-(theta/sigma)**2/2)/(sqrt(2*pi)*sigma)

SOLUTIONS = {
    "exact": (GAUSS, GAUSS),
    "constant-offset": (GAUSS + 3.7, GAUSS),
    "constant-factor": (-2.5 * GAUSS, GAUSS),
    "float-constants-and-offset": (0.398942 * exp(-0.5 * theta**2 / sigma**2) / sigma + 1.2, GAUSS),
    "pi-as-float": (3.14159 * x * y, pi * x * y),
    "pi-inside-a-function": (sin(3.14159 * x) * y, sin(pi * x) * y),
    "sqrt2-inside-exp": (exp(1.41421 * x) + y, exp(sqrt(2) * x) + y),
    "float-exponent": (x**2.00001 * y, x**2 * y),
    "float-noise-after-unscaling": (0.1591549 * (6.283185 * x + 1.0), x),
    "rearranged-square": ((x + y) ** 2 - 2 * x * y, x**2 + y**2),
    "double-angle": (1 - 2 * sin(x) ** 2, cos(2 * x)),
    "log-of-product": (log(2 * x) - log(2), log(x)),
    "fraction-rewritten": (x / y + 1, (x + y) / y),
    "positive-root": (sqrt(x**2) * y, x * y),
}
NOT_SOLUTIONS = {
    "wrong-exponent": (x**3 * y, x**2 * y),
    "missing-variable": (2 * x, x * y),
    "extra-variable": (x * y * theta, x * y),
    "different-function": (sin(x) * y, cos(x) * y),
    "wrong-inner-constant": (exp(-0.49 * theta**2 / sigma**2) / sigma, GAUSS),
    "constant-3-digits-off": (sin(3.141 * x), sin(pi * x)),
    "offset-and-factor": (2 * x * y + 1, x * y),  # one or the other, as SRBench's definition
    "zero": (sympy.Integer(0), x),
    "constant-only": (sympy.Float(2.5), x * y),
    "tree": (Piecewise((1.5, x <= 2.0), (3.0, True)), x),
}


@pytest.mark.parametrize("case", list(SOLUTIONS))
def test_true_positives(case):
    candidate, truth = SOLUTIONS[case]
    assert symbolic_solution(candidate, truth, timeout_s=None) is True


@pytest.mark.parametrize("case", list(NOT_SOLUTIONS))
def test_true_negatives(case):
    candidate, truth = NOT_SOLUTIONS[case]
    assert symbolic_solution(candidate, truth, timeout_s=None) is False


def rows_for(*exprs, n=200, seed=0):
    """Values of the expressions' variables, uniform in [1, 3] (every Feynman range is positive)."""
    names = sorted({s.name for e in exprs for s in e.free_symbols})
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(1.0, 3.0, n) for name in names}


@pytest.mark.parametrize("case", list(SOLUTIONS))
def test_the_numeric_screen_keeps_every_solution(case):
    candidate, truth = SOLUTIONS[case]
    assert not plainly_apart(candidate, truth, rows_for(candidate, truth))
    assert symbolic_solution(candidate, truth, timeout_s=None, rows=rows_for(candidate, truth)) is True


@pytest.mark.parametrize("case", list(NOT_SOLUTIONS))
def test_with_the_screen_non_solutions_stay_non_solutions(case):
    candidate, truth = NOT_SOLUTIONS[case]
    assert symbolic_solution(candidate, truth, timeout_s=None, rows=rows_for(candidate, truth)) is False


def test_the_screen_decides_plain_misses_and_leaves_near_misses_to_sympy():
    plain = ("wrong-exponent", "missing-variable", "extra-variable", "different-function",
             "offset-and-factor", "constant-only", "tree")  # fmt: skip
    for case in plain:
        assert plainly_apart(*NOT_SOLUTIONS[case], rows_for(*NOT_SOLUTIONS[case])), case
    # within rounding of a solution, or the zero candidate (its misfit as a multiple is 0/0)
    for case in ("constant-3-digits-off", "zero"):
        assert not plainly_apart(*NOT_SOLUTIONS[case], rows_for(*NOT_SOLUTIONS[case])), case
    assert not plainly_apart(x * y + 0.5, x * y, rows_for(x, y))  # an offset: a solution
    assert plainly_apart(1.02 * x * y + 0.5, x * y, rows_for(x, y))  # 2 % off, and offset too


def test_the_screen_needs_values_for_every_variable_and_enough_finite_rows():
    miss = NOT_SOLUTIONS["missing-variable"]
    assert not plainly_apart(*miss, {"x": np.linspace(1, 2, 50)})  # no values of y
    few = {"x": np.linspace(1, 2, 9), "y": np.linspace(1, 2, 9)}
    assert not plainly_apart(*miss, few)
    assert not plainly_apart(sympy.Float(2.5), sympy.Integer(1), {})  # no variables at all
    negative = {"x": -np.linspace(1, 2, 50), "y": np.linspace(1, 2, 50)}
    assert not plainly_apart(sympy.log(x) * y, x * y, negative)  # log of negatives: nan everywhere


def test_the_screen_answers_a_pathological_case_at_once():
    hard = sum(sin(k * x + y) ** k * cos(k * y) for k in range(1, 25))
    started = time.perf_counter()
    assert symbolic_solution(hard, x * y, timeout_s=30, rows=rows_for(x, y)) is False
    assert time.perf_counter() - started < 5  # no child process, no simplification


def test_the_child_process_gives_the_same_answers():
    for candidate, truth in (SOLUTIONS["float-constants-and-offset"], NOT_SOLUTIONS["wrong-exponent"]):
        assert symbolic_solution(candidate, truth) is symbolic_solution(candidate, truth, timeout_s=None)


def test_signed_variables_need_positive_false():
    assert symbolic_solution(sqrt(x**2), x, timeout_s=None) is True
    assert symbolic_solution(sqrt(x**2), x, timeout_s=None, positive=False) is False


def test_rounding_is_to_significant_digits_on_both_sides():
    assert rounded(pi * x) == rounded(3.14159 * x) == sympy.Rational(1571, 500) * x
    assert rounded(x**2.0) == x**2 and rounded(exp(-x / 2)) == exp(-x / 2)
    assert rounded(1.23456e-7 * x) == sympy.Rational("1.235e-7") * x  # not to decimal places
    assert rounded(sympy.Float("1.23456e400") * x) == sympy.Rational("1.235e400") * x  # beyond float64
    assert rounded(sqrt(2) * sqrt(pi) * x) == rounded(2.50663 * x)  # the numbers of a product together
    assert symbolic_solution(sin(3.14159 * x), sin(pi * x), timeout_s=None, digits=7) is False


def test_a_pathological_case_times_out_and_returns_none():
    hard = sum(sin(k * x + y) ** k * cos(k * y) for k in range(1, 25))
    started = time.perf_counter()
    assert symbolic_solution(hard, x * y, timeout_s=1) is None
    assert time.perf_counter() - started < 10  # the child was stopped, not waited for


def test_the_time_cap_works_in_a_thread():
    """A Dask worker runs its tasks in threads, where signal.alarm cannot be used."""
    hard = sum(sin(k * x + y) ** k * cos(k * y) for k in range(1, 25))
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(symbolic_solution, hard, x * y, 1)
        fast = pool.submit(symbolic_solution, 2 * x * y, x * y, 60)
        assert slow.result() is None and fast.result() is True


def test_candidates_map_onto_the_truths_symbols():
    truth = feynman.equation("II.13.17").formula()  # 1/(4*pi*epsilon*c**2)*2*I/r; I is a variable
    names = {s.name: s for s in truth.free_symbols}
    real = {n: sympy.Symbol(n, real=True) for n in names}
    candidate = 0.159155 * real["I"] / (real["epsilon"] * real["c"] ** 2 * real["r"])
    mapped = as_truth_symbols(candidate, truth)
    assert mapped.free_symbols == truth.free_symbols
    assert symbolic_solution(mapped, truth, timeout_s=None) is True
    # a written formula (formula.txt, metrics.json) names variables by identifiers: I is x_I there
    plain = candidate.xreplace({real[n]: names[n] for n in names})
    text = formula.as_text(plain, "B", digits=6)
    assert "x_I" in text
    parsed = as_truth_symbols(text, truth, formula.variables(plain, "B"))
    assert parsed.free_symbols == truth.free_symbols
    assert symbolic_solution(parsed, truth, timeout_s=None) is True
    assert as_truth_symbols(x + y, truth).free_symbols == {x, y}  # strangers stay strangers


def test_r2_on_the_noiseless_target():
    table = load_spec("feynman:I.12.1?n=400&noise=0.5&seed=2")
    fn = sympy.lambdify([sympy.Symbol(f) for f in table.feature_names], table.formula, "numpy")
    assert r2(table.y_true, fn(*table.X.T)) == 1.0
    assert r2(table.y, fn(*table.X.T)) < 0.9  # the noisy target is not the truth
    assert np.isfinite(r2(table.y_true, table.y))
