"""A fitted Distiller pickles with every built-in student (pickle and joblib) and, once loaded,
predicts and writes its formula exactly as before."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest

from jacdistill import Distiller
from jacdistill.registry import registry

BUDGETS = {
    "tree": {},
    "gplearn": {"generations": 2, "population_size": 50},
    "operon": {"generations": 5, "population_size": 50},
    "pysr": {"niterations": 2, "populations": 2, "maxsize": 10},
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.uniform(-2.0, 2.0, (120, 3))
    return X, X[:, 0] * X[:, 1] + np.sin(X[:, 2])


# importing pysr (to find out whether Julia is there) warns that torch was imported first
@pytest.mark.filterwarnings("ignore:torch was imported before juliacall")
@pytest.mark.parametrize("student", list(BUDGETS))
def test_fitted_distiller_round_trips(student, data, tmp_path):
    reason = registry().get("student", student).unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    X, y = data
    # λ chosen by the default tuner: the search's trials, each with its own student, pickle too
    est = Distiller(student=student, student_options=BUDGETS[student], epochs=5, widths=(8,)).fit(X, y)
    joblib.dump(est, tmp_path / "est.joblib")
    for loaded in (pickle.loads(pickle.dumps(est)), joblib.load(tmp_path / "est.joblib")):
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        np.testing.assert_array_equal(loaded.predict_teacher(X), est.predict_teacher(X))
        assert loaded.formula() == est.formula()
