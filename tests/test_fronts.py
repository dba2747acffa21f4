"""Students' accuracy–complexity fronts: each built-in student's candidates (operon's Pareto front,
gplearn's final population, the tree's pruning path), scored and filtered by ``fronts.front``."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sympy

from jacdistill import fronts
from jacdistill.contracts import Candidate, Student, count_nodes, variables
from jacdistill.options import JacdistillError
from jacdistill.registry import registry

STUDENTS = ["tree", "gplearn", "operon"]
# small budgets: each fit about a second on one core
BUDGETS = {
    "tree": {},
    "gplearn": {"population_size": 300, "generations": 10},
    "operon": {"population_size": 200, "generations": 30, "max_evaluations": 30_000},
}
TOLERANCE = 1e-6  # expression against native predictions (see relative_error)


@pytest.fixture(scope="module")
def data():
    """y = x0² + sin(x1) + noise (x2 irrelevant), standardized as the pipeline gives students."""
    rng = np.random.default_rng(7)
    X = rng.uniform(-2.0, 2.0, (300, 3))
    y = X[:, 0] ** 2 + np.sin(X[:, 1]) + 0.05 * rng.standard_normal(300)
    return (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()


_fitted = {}


def fitted(name, data, **options):
    key = (name, tuple(sorted(options.items())))
    if key not in _fitted:
        student = registry().get("student", name)(seed=0, **{**BUDGETS[name], **options})
        _fitted[key] = student.fit(*data)
    return _fitted[key]


def scored_candidates(student, X, y):
    """All the candidates the student offers, each with its training MSE (as front() scores it)."""
    candidates = student.candidates()
    for c in candidates:
        c.error = float(np.mean((c.predict(X) - y) ** 2))
    return candidates


def relative_error(a, b):
    """max|a - b| / max(1, max|b|): relative for large predictions, absolute for small ones."""
    return float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))))


def from_expression(candidate):
    """The candidate evaluated through its sympy expression alone (as once pickled)."""
    expr = candidate.expression
    return Candidate(candidate.complexity, lambda: expr)


def expression_tolerance(name, expr, X, native):
    """TOLERANCE, widened for Operon by how far float32 arithmetic can drift: pyoperon evaluates in
    float32, so its predictions are only as exact as eps32 × the largest intermediate value (a
    member such as 72857.6 - 72857.6·cos(0.0053·x1) loses digits to cancellation)."""
    if name != "operon":
        return TOLERANCE
    xs = variables(X.shape[1])
    largest = max(
        float(np.max(np.abs(sympy.lambdify(xs, sub, "numpy")(*X.T))))
        for sub in sympy.preorder_traversal(expr)
        if not sub.is_Atom
    )
    return TOLERANCE * max(1.0, largest) / max(1.0, float(np.max(np.abs(native))))


@pytest.mark.parametrize("name", STUDENTS)
def test_front_is_sorted_and_no_candidate_beats_a_member(name, data):
    X, y = data
    student = fitted(name, data)
    front = fronts.front(student, X, y)
    assert front
    complexities, errors = [m.complexity for m in front], [m.error for m in front]
    assert all(a < b for a, b in zip(complexities, complexities[1:])), complexities
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    candidates = scored_candidates(student, X, y)
    for m in front:  # no candidate as simple and more accurate than a member
        assert not any(c.complexity <= m.complexity and c.error < m.error for c in candidates), m
    for c in candidates:  # and every candidate is matched or beaten by a member
        assert any(m.complexity <= c.complexity and m.error <= c.error for m in front), c


@pytest.mark.parametrize("name", STUDENTS)
def test_each_member_expression_computes_its_native_predictions(name, data):
    X, y = data
    front = fronts.front(fitted(name, data), X, y)
    for m in front:
        native, symbolic = m.predict(X), from_expression(m).predict(X)
        assert m.expression.free_symbols <= set(variables(X.shape[1]))
        tolerance = expression_tolerance(name, m.expression, X, native)
        assert relative_error(symbolic, native) <= tolerance, (m, m.expression)
        if m is front[-1]:  # the tolerance catches a scale off by 1e-5 (a rounded scaling term)
            assert relative_error(symbolic * (1 + 1e-5), native) > tolerance


@pytest.mark.parametrize("name", ["tree", "operon"])
def test_own_model_is_the_most_accurate_member(name, data):
    """The tree's own model is the unpruned tree; Operon's is the Pareto member of least training
    MSE (model_selection_criterion, as a single-objective run's best model was). Both are the
    front's last member."""
    X, y = data
    student = fitted(name, data)
    last = fronts.front(student, X, y)[-1]
    assert last.complexity == student.complexity()
    assert last.expression == student.expression()
    np.testing.assert_array_equal(last.predict(X), student.predict(X))


def test_gplearn_own_program_is_a_candidate_on_the_front_or_dominated(data):
    """gplearn's best program wins on its own fitness (mean absolute error plus parsimony), not on
    MSE, so a member of the front may beat it; it is among the candidates either way."""
    X, y = data
    student = fitted("gplearn", data)
    front = fronts.front(student, X, y)
    own = [
        c
        for c in scored_candidates(student, X, y)
        if c.complexity == student.complexity() and c.expression == student.expression()
    ]
    assert len(own) == 1
    np.testing.assert_array_equal(own[0].predict(X), student.predict(X))
    on_front = any(m.complexity == own[0].complexity and m.error == own[0].error for m in front)
    dominated = any(m.complexity <= own[0].complexity and m.error < own[0].error for m in front)
    assert on_front or dominated


def test_tree_front_is_its_pruning_path(data):
    X, y = data
    student = fitted("tree", data)
    candidates = student.candidates()
    leaves = sorted(c.complexity for c in candidates)
    assert leaves[0] == 1 and leaves[-1] == student.complexity() and len(set(leaves)) == len(leaves)
    # a student pruned by its own ccp_alpha offers only trees pruned further
    pruned = fitted("tree", data, ccp_alpha=0.01)
    assert max(c.complexity for c in pruned.candidates()) == pruned.complexity() < student.complexity()


@pytest.mark.parametrize("name", STUDENTS)
def test_pickled_student_offers_the_same_candidates(name, data):
    X, y = data
    student = fitted(name, data)
    loaded = pickle.loads(pickle.dumps(student))
    before, after = student.candidates(), loaded.candidates()
    assert [c.complexity for c in after] == [c.complexity for c in before]
    assert [c.expression for c in after] == [c.expression for c in before]
    for a, b in zip(after, before):
        assert relative_error(a.predict(X), b.predict(X)) <= 1e-9
    np.testing.assert_array_equal(loaded.predict(X), student.predict(X))
    # a front pickles as its members' complexities, expressions and errors
    front = fronts.front(student, X, y)
    copies = pickle.loads(pickle.dumps(front))
    assert [(c.complexity, c.expression, c.error) for c in copies] == [
        (m.complexity, m.expression, m.error) for m in front
    ]


class LeastSquares(Student):
    """A third-party student with fit, predict and expression only: a front of one."""

    name = "least-squares"

    def fit(self, X, y):
        self.coef_ = np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]
        return self

    def predict(self, X):
        return np.c_[X, np.ones(len(X))] @ self.coef_

    def expression(self):
        xs = variables(len(self.coef_) - 1)
        return sum(sympy.Float(c) * x for c, x in zip(self.coef_, xs)) + sympy.Float(self.coef_[-1])


def test_a_student_without_candidates_gives_a_front_of_one(data):
    X, y = data
    student = LeastSquares().fit(X, y)
    (member,) = fronts.front(student, X, y)
    assert member.complexity == count_nodes(student.expression()) == student.complexity()
    assert member.error == pytest.approx(np.mean((student.predict(X) - y) ** 2), rel=1e-12)
    assert relative_error(from_expression(member).predict(X), student.predict(X)) <= 1e-12


@pytest.mark.parametrize("name", STUDENTS)
def test_same_seed_gives_the_same_front(name, data):
    """Operon too: its runs are seeded, and one thread (the default ``jobs``) keeps them in order."""
    X, y = data
    options = {"max_features": 2} if name == "tree" else {}  # ties between splits: random state
    runs = [
        fronts.front(registry().get("student", name)(seed=4, **BUDGETS[name], **options).fit(X, y), X, y)
        for _ in range(2)
    ]
    assert [(m.complexity, m.error) for m in runs[0]] == [(m.complexity, m.error) for m in runs[1]]


def test_operon_objectives_are_checked():
    cls = registry().get("student", "operon")
    assert cls(seed=0).options["objectives"] == ("r2", "length")
    with pytest.raises(JacdistillError, match="objectives"):
        cls(seed=0, objectives=["r2", "size"])


# importing pysr (to find out whether Julia is there) warns that torch was imported first
@pytest.mark.filterwarnings("ignore:torch was imported before juliacall")
def test_pysr_front_is_its_hall_of_fame(data):
    cls = registry().get("student", "pysr")
    reason = cls.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    X, y = data
    student = cls(seed=0, niterations=5, populations=4, maxsize=15).fit(X, y)
    front = fronts.front(student, X, y)
    assert len(student.candidates()) == len(student.estimator_.equations_)
    for m in front:
        assert relative_error(from_expression(m).predict(X), m.predict(X)) <= TOLERANCE
    assert any(m.expression == student.expression() for m in student.candidates())
