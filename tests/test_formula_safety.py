"""Written formulas are safe to load: whatever the column names (code, sympy constants and
functions, unicode, spaces, numbers), formula.txt and metrics.json hold safe identifiers that
sympy parses into plain Symbols without running anything, and their mapping leads back to the
columns and to the estimator's predictions."""

from __future__ import annotations

import json
import keyword
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy

from jacdistill import Distiller, contracts, evaluation, formula, pipeline
from jacdistill.data import Standardizer, from_frame, load_file, split_indices
from jacdistill.metrics import r2

JACDISTILL = Path(sys.executable).with_name("jacdistill")


def awkward_columns(marker: Path) -> list[str]:
    """Feature names that are code, sympy constants and functions, numpy, unicode, spaces, names
    that coincide once made identifiers, and numbers."""
    return [
        f"__import__('os').system('touch {marker}')",
        *("E", "I", "pi", "S", "oo", "lambda", "sin", "exp", "numpy"),
        *("température", "λ", "p (kPa)", "p_kPa", "1.5", "2e3", "nan", "frequency"),
    ]


def awkward_target(marker: Path) -> str:
    return f"__import__('os').system('touch {marker}-target') = y"


def awkward_frame(columns: list[str], n: int = 150, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2.0, 2.0, (n, len(columns)))
    # mostly the payload, E, sin, exp and numpy columns; a little of every other
    y = X[:, 0] + 3.0 * X[:, 1] + np.sin(X[:, 8]) + 2.0 * X[:, 7] * X[:, 9] + 0.1 * X.sum(axis=1) + 10.0
    return pd.DataFrame(X, columns=columns), y


def read_formula(text: str, variables: dict[str, str]) -> tuple[str, sympy.Expr]:
    """The target's name and the expression over Symbols named after the columns, read with
    sympy's plain parser (what a user would do) and renamed by the mapping."""
    lhs, rhs = text.split(" = ", 1)
    expr = sympy.sympify(rhs)
    assert all(isinstance(s, sympy.Symbol) and s.name in variables for s in expr.free_symbols), expr
    return variables[lhs], expr.xreplace({s: sympy.Symbol(variables[s.name]) for s in expr.free_symbols})


def read_formula_file(path: Path) -> tuple[str, dict[str, str]]:
    """The formula line of ``formula.txt`` and its variables mapping."""
    formula_line, variables_line = path.read_text().splitlines()
    prefix = "# variables: "
    assert variables_line.startswith(prefix)
    return formula_line, json.loads(variables_line.removeprefix(prefix))


# ------------------------------------------------------------------------------- identifiers


def test_identifiers_are_safe_distinct_and_keep_safe_names(tmp_path):
    names = [*awkward_columns(tmp_path / "never"), "x_E", "Ｅ", "True", "select", "power"]
    expr = sum(sympy.Symbol(name) for name in names)
    variables = formula.variables(expr, "power")

    assert list(variables.items())[0] == ("power", "power")  # the target first, kept
    assert sorted(variables.values()) == sorted(["power", *names])  # distinct: one per name
    for ident in variables:
        assert ident.isascii() and ident.isidentifier() and not keyword.iskeyword(ident), ident
        assert sympy.sympify(ident) == sympy.Symbol(ident), ident  # a plain Symbol, not E or sin
    by_name = {name: ident for ident, name in list(variables.items())[1:]}
    assert by_name["frequency"] == "frequency" and by_name["p_kPa"] == "p_kPa" and by_name["x_E"] == "x_E"
    assert by_name["p (kPa)"] == "p_kPa_2" and by_name["E"] == "x_E_2" and by_name["Ｅ"] == "x_E_3"
    assert by_name["température"] == "temperature" and by_name["1.5"] == "x_1_5"
    assert by_name["lambda"] == "x_lambda" and by_name["numpy"] == "x_numpy"
    assert by_name["power"] == "x_power"  # a numpy function: fine as the target's label only

    # the text parses back to the expression, and numpy evaluates it over the identifiers as they are
    name, parsed = read_formula(formula.as_text(expr, "power"), variables)
    assert name == "power" and parsed == expr
    text_expr = sympy.sympify(formula.as_text(sympy.sin(expr), "power").split(" = ", 1)[1])
    symbols = sorted(text_expr.free_symbols, key=lambda s: s.name)
    X = np.random.default_rng(0).normal(size=(5, len(symbols)))
    by_ident = {ident: i for i, ident in enumerate(s.name for s in symbols)}
    columns = [X[:, by_ident[by_name[n]]] for n in names]
    np.testing.assert_allclose(sympy.lambdify(symbols, text_expr, "numpy")(*X.T), np.sin(sum(columns)))


def test_evaluate_accepts_any_column_names(tmp_path):
    names = ["sin", "exp", "numpy", f"__import__('os').system('touch {tmp_path / 'ran'}')"]
    s = [sympy.Symbol(name) for name in names]
    expr = sympy.sin(s[0]) + sympy.exp(s[1]) * s[2] - s[3]
    X = np.random.default_rng(0).normal(size=(7, 4))
    expected = np.sin(X[:, 0]) + np.exp(X[:, 1]) * X[:, 2] - X[:, 3]
    np.testing.assert_allclose(formula.evaluate(expr, names, X), expected, rtol=1e-12)
    assert not (tmp_path / "ran").exists()


def test_exponentials_of_shifted_inputs_evaluate_where_their_constant_leaves_float64():
    # A student's exp(0.44·x) over a standardized transaction date (mean 2013, std 0.28), in data
    # units: sympy writes it c·exp(1.57·t) with c ≈ 1e-1373 (0 in float64) and exp(1.57·t) ≈ 1e1373
    # (inf), a NaN in float64 though every value of the formula is near 1.
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(2012.6, 2013.6, 50), rng.normal(size=50)])
    scaler = Standardizer.fit(X)
    x0, x1 = contracts.variables(2)
    standardized = -0.7 * sympy.exp(0.44 * x0) * sympy.cos(x1) + 1.3 * sympy.exp(-0.2 * x0 + x1)
    expr = formula.to_original_units(standardized, scaler, Standardizer(np.zeros(1), np.ones(1)), ["t", "u"])
    assert any(abs(f) < 1e-308 for f in expr.atoms(sympy.Float))  # the case: a constant beyond float64
    Z = scaler.transform(X)  # the reference: the same formula in float64, on standardized inputs
    expected = -0.7 * np.exp(0.44 * Z[:, 0]) * np.cos(Z[:, 1]) + 1.3 * np.exp(-0.2 * Z[:, 0] + Z[:, 1])
    np.testing.assert_allclose(formula.evaluate(expr, ["t", "u"], X), expected, rtol=1e-9)


# ------------------------------------------------------------- fitted, written and read back

STUDENTS = {
    "tree": {},
    "gplearn": {"generations": 2, "population_size": 200},
    "operon": {"generations": 5},
}


@pytest.mark.parametrize("student", list(STUDENTS))
def test_written_formulas_read_back_to_the_predictions(student, tmp_path):
    """A real Distiller fit on awkward columns, its run files written as ``jacdistill run`` writes
    them: formula.txt reads back to the predictions, metrics.json to the same formula rounded."""
    marker = tmp_path / "payload-ran"
    columns, target = awkward_columns(marker), awkward_target(marker)
    frame, y = awkward_frame(columns)
    data = from_frame(frame.assign(**{target: y}), target, "awkward")
    params = dict(
        student=student, student_options=STUDENTS[student], lam=0.0, epochs=30, lr=3e-2, widths=(16,)
    )
    fitted = evaluation.fit_and_score(data, params)
    run_dir = pipeline.prepare_run_dir(tmp_path / "run", {"target": target})
    pipeline.write_run(run_dir, data, fitted, None)
    est, metrics = fitted.estimator, json.loads((run_dir / "metrics.json").read_text())
    assert isinstance(est, Distiller) and est.feature_names() == columns

    line, variables = read_formula_file(run_dir / "formula.txt")
    assert line == est.formula(target) and metrics["variables"] == variables
    name, parsed = read_formula(line, variables)
    assert name == target and parsed.free_symbols  # the formula follows the data
    # within 1e-6 of the predictions' scale (Operon predicts in float32: ~1e-7 of it)
    pred = est.predict(frame)
    np.testing.assert_allclose(
        formula.evaluate(parsed, columns, frame), pred, rtol=1e-6, atol=1e-6 * np.abs(pred).max()
    )

    _, parsed_rounded = read_formula(metrics["formula"], variables)  # 6 significant digits
    rounded = formula.evaluate(formula.rounded(est.formula_, 6), columns, frame)
    np.testing.assert_allclose(formula.evaluate(parsed_rounded, columns, frame), rounded, rtol=1e-12)

    for written in (line, metrics["formula"], (run_dir / "formula.tex").read_text()):
        assert "__import__" not in written and "(kPa)" not in written
    assert not list(tmp_path.glob("payload-ran*"))


@pytest.mark.parametrize("student", list(STUDENTS))
def test_cli_run_on_awkward_columns(student, tmp_path):
    """``jacdistill run`` on a CSV of awkward columns: it succeeds, runs no payload, and its
    formula.txt reproduces the student test R² it reports."""
    marker = tmp_path / "payload-ran"
    frame, y = awkward_frame(awkward_columns(marker))
    target = awkward_target(marker)
    frame.assign(**{target: y}).to_csv(tmp_path / "awkward.csv", index=False)
    options = [arg for key, value in STUDENTS[student].items() for arg in ("--student-opt", f"{key}={value}")]
    proc = subprocess.run(
        [str(JACDISTILL), "run", "--data", "awkward.csv", "--student", student, "--epochs", "5"]
        + ["--lam", "0", "--out", "run", "--json", *options],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.glob("payload-ran*"))

    data = load_file(tmp_path / "awkward.csv")
    assert data.target_name == target
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    line, variables = read_formula_file(tmp_path / "run" / "formula.txt")
    assert variables == metrics["variables"] and set(variables.values()) <= {target, *data.feature_names}
    name, parsed = read_formula(line, variables)
    assert name == target
    test = split_indices(len(data.y), 0).test
    values = formula.evaluate(parsed, data.feature_names, data.X[test])
    assert r2(data.y[test], values) == pytest.approx(metrics["student_r2_test"], rel=1e-6, abs=1e-6)
    # at λ = 0 the run is its own baseline: the same files again
    assert (tmp_path / "run" / "baseline" / "formula.txt").read_text() == (
        tmp_path / "run" / "formula.txt"
    ).read_text()
