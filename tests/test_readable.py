"""The formula shown to people: exact phase wrapping, the shortest constants that keep validation
R², integers as integers, simplification that only shortens (jacdistill.readable)."""

import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy

from jacdistill import readable as readable_module
from jacdistill.contracts import Candidate, count_nodes, variables
from jacdistill.formula import evaluate
from jacdistill.metrics import r2
from jacdistill.readable import readable, wrap_phases

F = sympy.Float
x, y, z = sympy.symbols("x y z")
NAMES = ["x", "y", "z"]


def rows(n=300, low=-3.0, high=3.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=(n, len(NAMES)))


def noisy(expr, X, sd, seed=1):
    truth = evaluate(expr, NAMES, X)
    return truth + np.random.default_rng(seed).normal(0.0, sd * truth.std(), len(X))


def phases(expr, func):
    return [call.args[0].as_coeff_Add()[0] for call in expr.atoms(func)]


def significant_digits(number):
    """Digits of a constant as it prints: str(1.23) -> 3, str(0.0012) -> 2, str(1.5e-5) -> 2."""
    mantissa = str(number).lstrip("-").split("e")[0].replace(".", "")
    return len(mantissa.lstrip("0"))


def assert_same_values(a, b, X):
    va, vb = evaluate(a, NAMES, X), evaluate(b, NAMES, X)
    np.testing.assert_allclose(va, vb, rtol=1e-9, atol=1e-9 * np.abs(vb).max())


def assert_r2_kept(original, shown, X, y_val, tolerance=1e-3):
    before, after = r2(y_val, evaluate(original, NAMES, X)), r2(y_val, evaluate(shown, NAMES, X))
    assert abs(after - before) <= tolerance, (before, after, shown)


@pytest.mark.parametrize(
    "expr, func",
    [
        (F(7.006) * sympy.cos(F(5.678) * x + F(2474.0)), sympy.cos),
        (sympy.cos(x + F(2474.0)), sympy.cos),
        (F(2.0) * sympy.sin(F(3.0) * x - F(1000.5)) + y, sympy.sin),
        (sympy.tan(F(0.3) * x + F(2.0)), sympy.tan),
        (sympy.tan(F(0.3) * x - F(40.1)), sympy.tan),
    ],
)
def test_phase_is_reduced_exactly(expr, func):
    wrapped = wrap_phases(expr)
    half = math.pi if func is not sympy.tan else math.pi / 2
    (phase,) = phases(wrapped, func)
    assert -half < float(phase) <= half
    (before,) = phases(expr, func)
    turns = (float(before) - float(phase)) / (2 * half)
    assert turns != 0 and abs(turns - round(turns)) < 1e-12  # a whole number of periods removed
    X = rows(500, -10.0, 10.0)
    if func is sympy.tan:  # away from the poles, where a 1e-16 change of argument is amplified
        (call,) = expr.atoms(sympy.tan)
        X = X[np.abs(evaluate(sympy.cos(call.args[0]), NAMES, X)) > 1e-3]
    assert_same_values(wrapped, expr, X)


def test_cos_2474_phase_value():
    (phase,) = phases(wrap_phases(sympy.cos(x + F(2474.0))), sympy.cos)
    with mpmath.workdps(40):
        expected = mpmath.mpf(2474) - 394 * 2 * mpmath.pi
    assert float(phase) == pytest.approx(float(expected), abs=1e-13)


def test_nested_phases_in_a_sum():
    expr = (
        F(3.0) * sympy.sin(x + F(7.25) * sympy.sin(y + F(50.0)) - F(100.0))
        + sympy.cos(F(2.0) * z - F(7.5))
        + y
    )
    wrapped = wrap_phases(expr)
    assert len(wrapped.atoms(sympy.sin)) == 2
    for phase in phases(wrapped, sympy.sin) + phases(wrapped, sympy.cos):
        assert -math.pi < float(phase) <= math.pi
    assert_same_values(wrapped, expr, rows(500, -10.0, 10.0))


def test_phases_at_period_boundaries_stay_in_the_interval():
    multiples = [k * math.pi for k in range(-41, 42)]
    candidates = multiples + list(np.random.default_rng(0).uniform(-1e4, 1e4, 200))
    for value in candidates:
        for func, periods in [(sympy.sin, 2), (sympy.tan, 1)]:
            with mpmath.workdps(40):  # float(pi) < pi: compare with the real interval
                half = periods * mpmath.pi / 2
                for phase in phases(wrap_phases(func(x + F(value))), func):
                    assert -half < mpmath.mpf(float(phase)) <= half, (value, func)


def test_exact_phases_are_kept():
    assert wrap_phases(sympy.sin(x + 100)) == sympy.sin(x + 100)


def test_rounding_keeps_r2_and_shortens_constants():
    expr = (
        F(2.3456789) * x + F(0.98765432) * y**2 - F(0.123456789) * sympy.exp(F(0.5123456) * z) + F(3.2109876)
    )
    X = rows()
    y_val = noisy(expr, X, 0.05)
    shown = readable(expr, NAMES, X, y_val)
    assert_r2_kept(expr, shown, X, y_val)
    digits = [significant_digits(f) for f in shown.atoms(sympy.Float)]
    assert digits and max(digits) <= 4, shown
    assert len(str(shown)) < len(str(expr)) / 2


def test_a_constant_that_needs_many_digits_keeps_them():
    expr = x + F(1000.123)
    X = rows(300, 0.0, 1.0)
    y_val = evaluate(expr, NAMES, X) + np.random.default_rng(1).normal(0.0, 1e-4, len(X))
    assert r2(y_val, evaluate(x + 1000, NAMES, X)) < r2(y_val, evaluate(expr, NAMES, X)) - 1e-3
    shown = readable(expr, NAMES, X, y_val)
    assert_r2_kept(expr, shown, X, y_val)
    (constant,) = shown.atoms(sympy.Float)
    assert abs(float(constant) - 1000.123) < 0.01


def test_integers_are_shown_as_integers():
    expr = F(1.0) * x ** F(1.0) + F(2.0000001) * y ** F(2.0) + F(0.51234) * x * z - F(3.9999999)
    X = rows()
    y_val = noisy(expr, X, 0.05)
    shown = readable(expr, NAMES, X, y_val)
    assert_r2_kept(expr, shown, X, y_val)
    text = str(shown)
    assert "1.0*" not in text and "**1.0" not in text and "**2.0" not in text
    assert "Integer(2)" in sympy.srepr(shown) and "Integer(-4)" in sympy.srepr(shown)
    assert all(not float(f).is_integer() for f in shown.atoms(sympy.Float))
    assert text == "0.5*x*z + x + 2*y**2 - 4"


def test_tree_thresholds_are_rounded_and_r2_kept():
    tree = sympy.Piecewise(
        (F(12.3456789), x <= F(0.4567891)),
        (F(45.6789012), y <= F(-1.2345678)),
        (F(78.9012345), True),
    )
    X = rows(300)
    y_val = noisy(tree, X, 0.1)
    shown = readable(tree, NAMES, X, y_val)
    assert isinstance(shown, sympy.Piecewise)
    assert_r2_kept(tree, shown, X, y_val)
    thresholds = [
        f for cond in shown.atoms(sympy.core.relational.Relational) for f in cond.atoms(sympy.Float)
    ]
    assert thresholds and all(significant_digits(f) <= 4 for f in thresholds)


def test_protected_division_keeps_r2():
    denominator = F(0.8123456) * y - F(0.3456789)
    expr = F(2.3456) * sympy.Piecewise((x / denominator, sympy.Abs(denominator) > F(0.001)), (1, True)) + F(
        1.234567
    ) * sympy.cos(F(1.5) * z + F(40.0))
    X = rows()
    y_val = noisy(expr, X, 0.05)
    shown = readable(expr, NAMES, X, y_val)
    assert shown.has(sympy.Piecewise)
    assert_r2_kept(expr, shown, X, y_val)
    assert all(-math.pi < float(p) <= math.pi for p in phases(shown, sympy.cos))


@pytest.mark.parametrize("seed", range(4))
def test_random_formulas_keep_r2(seed):
    rng = np.random.default_rng(seed)
    c = [F(v) for v in rng.normal(0.0, 3.0, 8)]
    expr = (
        c[0] * sympy.tanh(c[1] * x + c[2] * y)
        + c[3] * sympy.sin(c[4] * z + F(100.0) * c[5])
        + c[6] * sympy.Max(x, c[7])
        + sympy.sqrt(sympy.Abs(y))
    )
    X = rows(300, seed=seed)
    y_val = noisy(expr, X, 0.2, seed=seed)
    shown = readable(expr, NAMES, X, y_val)
    assert_r2_kept(expr, shown, X, y_val)
    assert count_nodes(shown) <= count_nodes(expr)


@pytest.mark.parametrize(
    "expr, unsimplified, simplified",
    [  # expand cancels the x**2 terms; factor_terms takes out 2*x
        (
            F(2.0) * x * y + F(4.0) * x * z + (x + F(1.0)) * (x - F(1.0)) - x**2,
            2 * x * y + 4 * x * z + (x + 1) * (x - 1) - x**2,
            2 * x * y + 4 * x * z - 1,
        ),
        (F(2.0) * x * y + F(4.0) * x * z, 2 * x * y + 4 * x * z, 2 * x * (y + 2 * z)),
        (  # expanded in full precision, then the new constant (-5.324000000000001) is shortened
            F(1.1) * (x + F(2.2)) * (x - F(2.2)) - F(1.1) * x**2 + F(0.7) * y * z,
            (x - F(2.2)) * (F(1.1) * x + F(2.42)) - F(1.1) * x**2 + F(0.7) * y * z,
            F(0.7) * y * z - F(5.32),
        ),
    ],
)
def test_simplification_only_shortens_and_can_be_turned_off(expr, unsimplified, simplified):
    X = rows(300, -1.0, 1.0)
    y_val = noisy(expr, X, 0.01)
    assert str(readable(expr, NAMES, X, y_val, simplify=False, drop_terms=False)) == str(unsimplified)
    shown = readable(expr, NAMES, X, y_val, drop_terms=False)
    assert str(shown) == str(simplified)
    assert count_nodes(shown) < count_nodes(unsimplified) <= count_nodes(expr)
    assert_r2_kept(expr, shown, X, y_val)


def test_factor_terms_is_bounded_by_size_not_time(monkeypatch):
    # a bound on nodes gives the same formula on a busy machine as on an idle one
    expr = F(2.0) * x * y + F(4.0) * x * z
    X = rows(300, -1.0, 1.0)
    y_val = noisy(expr, X, 0.01)
    monkeypatch.setattr(readable_module, "_FACTOR_MAX_NODES", count_nodes(expr))
    assert str(readable(expr, NAMES, X, y_val)) == "2*x*(y + 2*z)"
    monkeypatch.setattr(readable_module, "_FACTOR_MAX_NODES", count_nodes(expr) - 1)
    assert str(readable(expr, NAMES, X, y_val)) == "2*x*y + 4*x*z"


def test_drop_terms_leaves_out_a_negligible_offset_and_keeps_what_matters():
    # II.6.11's shape, p·cos θ/(4π·ε·r²), as Operon fits it: a tiny offset beside the true term
    truth = x * sympy.cos(y) / (4 * sympy.pi * z**2)
    fitted = F(0.0795775) * x * sympy.cos(y) / z**2 + F(2.31e-5) + F(0.0101) * y
    X = rows(400, 1.0, 3.0)
    y_val = noisy(truth + sympy.Rational(1, 100) * y, X, 0.001)
    kept = readable(fitted, NAMES, X, y_val, drop_terms=False)
    dropped = readable(fitted, NAMES, X, y_val)  # the default
    assert kept.as_coeff_Add()[0] != 0  # without drop_terms the offset stays, rounded
    assert dropped.as_coeff_Add()[0] == 0 and count_nodes(dropped) < count_nodes(kept)
    assert dropped.has(y) and len(sympy.Add.make_args(dropped)) == 2  # 0.0101·y carries R²: kept
    assert_r2_kept(fitted, dropped, X, y_val)
    assert readable(fitted, NAMES, X, y_val, simplify=False).as_coeff_Add()[0] == 0  # step 4 alone
    # SRBench's solution: a constant ratio to the true formula (here 0.0801/0.0796, the display's
    # rounding within the R² tolerance); with the offset kept, neither ratio nor difference is one
    assert sympy.simplify((dropped - y / 100) / truth).is_number
    assert not sympy.simplify((kept - y / 100) / truth).is_number


def test_drop_terms_reaches_into_nested_sums_and_leaves_conditions_alone():
    # a GP's tiny 1e-4·z inside a tanh beside a term that matters, 0.8·x inside an exp
    fitted = F(2.0) * x * sympy.tanh(y + F(1.2e-4) * z) + sympy.exp(F(0.8) * x - F(0.1) * y)
    X = rows(400, -1.0, 1.0)
    y_val = noisy(2 * x * sympy.tanh(y) + sympy.exp(F(0.8) * x - F(0.1) * y), X, 0.01)
    kept = readable(fitted, NAMES, X, y_val, drop_terms=False)
    dropped = readable(fitted, NAMES, X, y_val)
    assert kept.has(z) and not dropped.has(z) and count_nodes(dropped) < count_nodes(kept)
    assert dropped.has(sympy.exp(F(0.8) * x - F(0.1) * y).func) and dropped.has(y)
    assert_r2_kept(fitted, dropped, X, y_val)
    # a tree's threshold is a condition, not a term: it stays whatever it costs
    tree = sympy.Piecewise((F(1.0), x + F(1e-4) * z < F(0.3)), (F(2.0) + F(1e-6) * y, True))
    y_tree = noisy(sympy.Piecewise((1, x < 0.3), (2, True)), X, 0.01)
    shown = readable(tree, NAMES, X, y_tree)
    assert shown.has(z) and not shown.args[1][0].has(y)
    # once 1e-4·y is gone from the denominator, leaving out its 1 would divide by zero: not tried
    fraction = x / (F(1.0) + F(1e-4) * y) + F(0.5) * z
    assert str(readable(fraction, NAMES, X, noisy(x + z / 2, X, 0.01))) == "x + 0.5*z"
    # nor leaving 2·y out of sqrt(2·y + 3): what is left, sqrt(-1.0)·x, is complex
    root = x * sympy.sqrt(F(2.0) * y - F(1.0) + F(1e-4) * z) + F(1e-3) * z
    X_pos, y_pos = rows(400, 1.0, 3.0), noisy(root, rows(400, 1.0, 3.0), 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning included
        shown = readable(root, NAMES, X_pos, y_pos)
    assert not shown.has(sympy.I)
    assert_r2_kept(root, shown, X_pos, y_pos)


def test_a_large_expression_returns_and_keeps_r2():
    rng = np.random.default_rng(2)
    terms = [
        F(rng.normal()) * sympy.sin(F(rng.normal()) * (x, y, z)[i % 3] + F(rng.uniform(-50, 50)))
        for i in range(60)
    ]
    expr = sympy.Add(*terms) * (F(1.5) + x)
    X = rows()
    y_val = noisy(expr, X, 0.05)
    shown = readable(expr, NAMES, X, y_val)
    assert count_nodes(shown) <= count_nodes(expr)
    assert_r2_kept(expr, shown, X, y_val)


def test_nan_r2_returns_the_wrapped_formula():
    expr = sympy.log(x) + sympy.cos(y + F(100.0))  # log of negative inputs: NaN
    X = rows()
    shown = readable(expr, NAMES, X, np.random.default_rng(0).normal(size=len(X)))
    assert shown == wrap_phases(expr)
    constant_target = readable(F(1.2345) * x, NAMES, X, np.ones(len(X)))
    assert constant_target == F(1.2345) * x


def test_a_formula_without_constants():
    X = rows()
    y_val = noisy(x * y + z, X, 0.1)
    assert readable(x * y + z, NAMES, X, y_val) == x * y + z


def test_any_column_names():
    names = ["sin", "_p0", "p (kPa)"]
    a, b, c = (sympy.Symbol(n) for n in names)
    expr = F(2.3456) * a + F(0.5123) * sympy.cos(b + F(40.0)) + F(1.0001) * c
    X = rows()
    truth = evaluate(expr, names, X)
    y_val = truth + np.random.default_rng(1).normal(0.0, 0.05 * truth.std(), len(X))
    shown = readable(expr, names, X, y_val)
    assert shown.free_symbols == {a, b, c}
    before, after = r2(y_val, truth), r2(y_val, evaluate(shown, names, X))
    assert abs(after - before) <= 1e-3


def test_conditions_of_nested_ites_evaluate_as_sympy_does():
    """gplearn's nested protected divisions fold into Piecewise conditions made of nested ITEs,
    which sympy prints as a float-valued numpy select (it stopped a study run with numpy's "should
    be boolean ndarray"); evaluate, readable and Candidate.predict give sympy's own values."""
    a, b, c, d, e, f, g, h = (sympy.Abs(x + k * y - z) > 0.5 for k in range(1, 9))
    condition = sympy.ITE(a & (b | c), d, sympy.ITE(e | f, g, sympy.ITE(h, b, True)))
    expr = sympy.Piecewise((F(1.5) * x, condition), (F(0.25) * y, True))
    X = rows(n=200)
    reference = np.array([float(expr.subs(dict(zip((x, y, z), row)))) for row in X])
    assert 0 < np.mean(reference == 1.5 * X[:, 0]) < 1  # both branches are taken
    np.testing.assert_array_equal(evaluate(expr, NAMES, X), reference)
    assert_r2_kept(expr, readable(expr, NAMES, X, reference), X, reference)
    x0, x1, x2 = variables(3)
    member = Candidate(count_nodes(expr), lambda: expr.xreplace({x: x0, y: x1, z: x2}))
    np.testing.assert_array_equal(member.predict(X), reference)
