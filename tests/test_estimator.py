"""``jacdistill.Distiller``: scikit-learn conformance, formula fidelity, determinism, checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sympy
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from jacdistill import Distiller, JacdistillError, formula, teacher

# Small and fast, yet good enough for check_regressors_train (R^2 > 0.5 on its dataset).
FAST = dict(student="tree", regularizer="jacobian", lam=1e-3, widths=(16,), epochs=10, patience=5, lr=3e-2)

STUDENT_BUDGETS = {
    "tree": {},
    "gplearn": {"population_size": 200, "generations": 5},
    "operon": {"population_size": 100, "generations": 10, "max_evaluations": 5_000},
}


@parametrize_with_checks([Distiller(**FAST)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------- formula in units


def wide_scale_frame(n=160, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "pressure": rng.uniform(100.0, 1000.0, n),
            "flow": rng.uniform(-0.01, 0.01, n),
            "temp": rng.uniform(-1.0, 1.0, n),
        }
    )
    y = 2e-3 * frame["pressure"] + 150.0 * frame["flow"] * frame["temp"] + np.sin(2.0 * frame["temp"]) + 40.0
    return frame, y.to_numpy()


@pytest.fixture(scope="module")
def wide_data():
    return wide_scale_frame()


@pytest.mark.parametrize("student,rtol", [("tree", 1e-6), ("gplearn", 1e-6), ("operon", 1e-4)])
def test_formula_in_original_units_reproduces_predictions(student, rtol, wide_data):
    frame, y = wide_data
    est = Distiller(**{**FAST, "student": student, "student_options": STUDENT_BUDGETS[student]})
    est.fit(frame, y)
    assert est.feature_names() == ["pressure", "flow", "temp"]
    assert list(est.feature_names_in_) == ["pressure", "flow", "temp"]

    names = {s.name for s in est.formula_.free_symbols}
    assert names and names <= {"pressure", "flow", "temp"}, names
    assert not any(name.startswith("x") for name in names)

    pred = est.predict(frame)
    got = formula.evaluate(est.formula_, est.feature_names(), frame.to_numpy())
    assert got.shape == pred.shape == (len(frame),)
    # the formula is not a constant: it follows the data (so the comparison is not vacuous)
    assert np.ptp(pred) > 0.1 * np.ptp(y)
    np.testing.assert_allclose(got, pred, rtol=rtol, atol=rtol * np.std(y))
    # also on rows the estimator has not seen
    fresh, _ = wide_scale_frame(n=50, seed=1)
    np.testing.assert_allclose(
        formula.evaluate(est.formula_, est.feature_names(), fresh.to_numpy()),
        est.predict(fresh),
        rtol=rtol,
        atol=rtol * np.std(y),
    )
    # the text form names the columns too
    text = est.formula("power")
    assert text.startswith("power = ") and any(name in text for name in names)


def test_formula_uses_the_column_names_as_given(wide_data):
    """Names that are no Python identifiers (or clash with sympy) still evaluate correctly."""
    frame, y = wide_data
    odd = frame.rename(columns={"pressure": "p (kPa)", "flow": "lambda", "temp": "E"})
    est = Distiller(**FAST).fit(odd, y)
    assert {s.name for s in est.formula_.free_symbols} <= {"p (kPa)", "lambda", "E"}
    np.testing.assert_allclose(
        formula.evaluate(est.formula_, est.feature_names(), odd.to_numpy()),
        est.predict(odd),
        rtol=1e-6,
        atol=1e-6 * np.std(y),
    )


# ------------------------------------------------------------------------------- determinism


def small_problem(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2.0, 2.0, (n, 3))
    return X, X[:, 0] * X[:, 1] + np.sin(X[:, 2])


@pytest.mark.parametrize("student", ["tree", "gplearn"])
def test_same_seed_gives_identical_fits(student):
    X, y = small_problem()
    make = lambda seed: Distiller(
        **{**FAST, "student": student, "student_options": STUDENT_BUDGETS[student]}, seed=seed
    ).fit(X, y)
    a, b, c = make(7), make(7), make(8)
    np.testing.assert_array_equal(a.predict_teacher(X), b.predict_teacher(X))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert sympy.srepr(a.formula_) == sympy.srepr(b.formula_)
    for (name, pa), (_, pb) in zip(a.teacher_.state_dict().items(), b.teacher_.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert not np.array_equal(a.predict_teacher(X), c.predict_teacher(X))


def test_refit_does_not_depend_on_global_random_state():
    X, y = small_problem()
    torch.manual_seed(123)
    np.random.seed(123)
    a = Distiller(**FAST, seed=1).fit(X, y).predict_teacher(X)
    torch.manual_seed(999)
    np.random.seed(999)
    torch.rand(10)
    b = Distiller(**FAST, seed=1).fit(X, y).predict_teacher(X)
    np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------------- checkpoint


def test_teacher_checkpoint_round_trip(tmp_path):
    X, y = small_problem()
    est = Distiller(**{**FAST, "widths": (8, 5), "activation": "tanh"}).fit(X, y)
    meta = {
        "feature_names": est.feature_names(),
        "x_mean": est.x_scaler_.mean.tolist(),
        "x_scale": est.x_scaler_.scale.tolist(),
        "regularizer": "jacobian",
    }
    path = tmp_path / "teacher.pt"
    torch.save(teacher.checkpoint(est.teacher_, **meta), path)
    model, saved = teacher.load(path)
    assert isinstance(model, teacher.MLP) and not model.training
    assert model.architecture == {"d_in": 3, "widths": [8, 5], "d_out": 1, "activation": "tanh"}
    for key, value in meta.items():
        assert saved[key] == value
    Xs = est.x_scaler_.transform(X)
    np.testing.assert_array_equal(teacher.predict(model, Xs), teacher.predict(est.teacher_, Xs))
    restored = est.y_scaler_.inverse(teacher.predict(model, Xs)[:, None])[:, 0]
    np.testing.assert_array_equal(restored, est.predict_teacher(X))


def test_checkpoint_of_vector_output_mlp_round_trips(tmp_path):
    torch.manual_seed(0)
    model = teacher.MLP(4, (6,), 3, "relu")
    path = tmp_path / "t.pt"
    torch.save(teacher.checkpoint(model), path)
    loaded, _ = teacher.load(path)
    X = np.random.default_rng(0).normal(size=(9, 4))
    out = teacher.predict(loaded, X)
    assert out.shape == (9, 3)
    np.testing.assert_array_equal(out, teacher.predict(model, X))


# -------------------------------------------------------------------------------- divergence


def test_diverging_training_is_a_jacdistill_error():
    X, y = small_problem()
    with pytest.raises(JacdistillError, match="diverged"):
        Distiller(**{**FAST, "lr": 1e6, "widths": (8, 8)}).fit(X, y)


def test_a_non_finite_penalty_is_reported_as_divergence():
    from jacdistill.contracts import Regularizer

    class Exploding(Regularizer):
        name = "exploding"

        def output_and_penalty(self, model, x):
            return model(x), sum(p.sum() for p in model.parameters()) * float("inf")

    X, y = small_problem()
    config = teacher.TrainConfig(epochs=3, batch_size=16)
    with pytest.raises(JacdistillError, match="diverged at epoch 1"):
        teacher.train(
            teacher.MLP(X.shape[1], (4,)),
            Exploding(),
            teacher.EarlyStopping(0.1, 3),
            X,
            y,
            X,
            y,
            config,
            seed=0,
        )


def test_bad_lambda_is_rejected_before_training():
    X, y = small_problem()
    for lam in (-1.0, "0.1", True, float("nan")):
        with pytest.raises(JacdistillError, match="lam"):
            Distiller(**{**FAST, "lam": lam}).fit(X, y)


def test_unknown_plugin_names_are_jacdistill_errors():
    X, y = small_problem()
    with pytest.raises(JacdistillError, match="student 'nope'"):
        Distiller(**{**FAST, "student": "nope"}).fit(X, y)
    with pytest.raises(JacdistillError, match="regularizer 'nope'"):
        Distiller(**{**FAST, "regularizer": "nope"}).fit(X, y)
    with pytest.raises(JacdistillError, match="bogus"):
        Distiller(**{**FAST, "student_options": {"bogus": 1}}).fit(X, y)
