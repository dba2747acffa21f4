"""The Feynman equation table and the ground-truth problems sampled from it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

from jacdistill import data, feynman
from jacdistill.data import load_spec

NAMES = list(feynman.equations())


def test_the_table_ships_with_the_package_and_has_100_equations():
    assert len(NAMES) == 100 and NAMES[:3] == ["I.6.2a", "I.6.2", "I.6.2b"]
    assert all(low < high for eq in feynman.equations().values() for _, low, high in eq.variables)
    assert feynman.MIN_ROWS == data.MIN_ROWS


@pytest.mark.parametrize("name", NAMES)
def test_every_equation_parses_and_evaluates_finitely_on_its_ranges(name):
    eq = feynman.equation(name)
    formula = eq.formula()
    # the listed variables are the formula's, as plain Symbols (a variable I or gamma is no constant)
    assert formula.free_symbols == set(eq.symbols)
    assert all(type(s) is sympy.Symbol for s in formula.free_symbols)
    table = load_spec(f"feynman:{name}?n=2000&seed=1")  # from_frame's checks: finite, scalable, ...
    assert np.isfinite(table.y_true).all() and np.ptp(table.y_true) > 0
    low, high = (np.array([v[i] for v in eq.variables]) for i in (1, 2))
    assert ((table.X >= low) & (table.X < high)).all()
    # the formula the Dataset carries, over its feature names, gives its noiseless target
    fn = sympy.lambdify([sympy.Symbol(f) for f in table.feature_names], table.formula, "numpy")
    assert np.allclose(fn(*table.X.T), table.y_true, rtol=1e-12, atol=0)


def test_names_sympy_would_read_otherwise_stay_variables():
    """II.13.17 has a variable I (sympy's imaginary unit), I.39.11 gamma (a function), I.30.5 lambd
    and arcsin (numpy's spelling)."""
    for name, variable in [("II.13.17", "I"), ("I.39.11", "gamma")]:
        assert sympy.Symbol(variable) in feynman.equation(name).formula().free_symbols
    assert feynman.equation("I.30.5").formula().has(sympy.asin)
    assert np.isrealobj(load_spec("feynman:II.13.17?n=50").y_true)


def test_the_same_spec_gives_the_same_arrays():
    spec = "feynman:I.9.18?n=300&noise=0.05&seed=11"
    a, b = load_spec(spec), load_spec(spec)
    for field in ("X", "y", "y_true"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert a.formula == b.formula
    other = load_spec("feynman:I.9.18?n=300&noise=0.05&seed=12")
    assert not np.array_equal(a.X, other.X)


def test_one_seed_gives_the_same_inputs_at_every_noise_level():
    clean, noisy = load_spec("feynman:I.12.2?n=500"), load_spec("feynman:I.12.2?n=500&noise=0.1")
    assert np.array_equal(clean.X, noisy.X) and np.array_equal(clean.y_true, noisy.y_true)
    assert np.array_equal(clean.y, clean.y_true)  # no noise: the target is the noiseless one
    assert not np.array_equal(noisy.y, noisy.y_true)


@pytest.mark.parametrize("level", [0.001, 0.01, 0.1, 1.0])
def test_noise_is_level_times_the_targets_rms(level):
    """SRBench's definition: Gaussian, standard deviation level × sqrt(mean(y_true²))."""
    table = load_spec(f"feynman:I.6.2b?n=200000&noise={level}&seed=5")
    rms = math.sqrt(np.mean(table.y_true**2))
    residual = table.y - table.y_true
    assert np.std(residual) == pytest.approx(level * rms, rel=0.01)  # 200k draws: ~0.2 % spread
    assert abs(np.mean(residual)) < 5 * level * rms / math.sqrt(len(residual))


def test_spec_defaults_and_values():
    assert feynman.parse("feynman:I.6.2") == feynman.Spec("I.6.2", n=1000, noise=0.0, seed=0)
    parsed = feynman.parse("feynman:I.6.2?seed=4&noise=1e-3&n=20")
    assert parsed == feynman.Spec("I.6.2", n=20, noise=0.001, seed=4)
    assert isinstance(parsed.n, int) and isinstance(parsed.noise, float)
    assert load_spec("feynman:I.6.2?n=20").X.shape == (20, 2)
