"""Students: recovery of a known formula, expression == predict, complexity, determinism, options."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from jacdistill.contracts import count_nodes, variables
from jacdistill.options import JacdistillError
from jacdistill.registry import registry

D = 3

# small budgets: each fit well under a few seconds on 2 cores, still reliable for x0*x1 + sin(x2)
BUDGETS = {
    "tree": {"max_depth": 5, "min_samples_leaf": 5},
    "gplearn": {"population_size": 1000, "generations": 20},
    "operon": {"population_size": 200, "generations": 30, "max_evaluations": 30_000},
}
# operon evaluates in float32: its predictions and the float64 sympy expression agree to ~1e-7
EXPRESSION_TOLERANCE = {"tree": (1e-12, 1e-12), "gplearn": (1e-10, 1e-10), "operon": (1e-4, 1e-4)}


def target(X):
    return X[:, 0] * X[:, 1] + np.sin(X[:, 2])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240611)
    X = rng.uniform(-2.0, 2.0, size=(400, D))
    y = target(X)
    return X[:300], y[:300], X[300:], y[300:]


def student_class(name):
    return registry().get("student", name)


_fitted = {}


def fitted(name, data, seed=0):
    """One fit per (student, seed) for the whole module."""
    key = (name, seed)
    if key not in _fitted:
        X_train, y_train, _, _ = data
        _fitted[key] = student_class(name)(seed=seed, **BUDGETS[name]).fit(X_train, y_train)
    return _fitted[key]


def r2(y, pred):
    return 1.0 - np.sum((y - pred) ** 2) / np.sum((y - np.mean(y)) ** 2)


def evaluate_expression(expr, X):
    fn = sympy.lambdify(variables(X.shape[1]), expr, "numpy")
    return np.broadcast_to(np.asarray(fn(*X.T), dtype=np.float64), (len(X),))


@pytest.mark.parametrize("name", ["gplearn", "operon"])
def test_symbolic_students_recover_known_formula(name, data):
    _, _, X_test, y_test = data
    student = fitted(name, data)
    score = r2(y_test, student.predict(X_test))
    assert score > 0.99, f"{name} R2 on held-out rows {score:.4f}; expression {student.expression()}"


def test_tree_student_is_the_configured_decision_tree(data):
    """Options and seed reach sklearn's DecisionTreeRegressor unchanged."""
    from sklearn.tree import DecisionTreeRegressor

    X_train, y_train, X_test, _ = data
    student = fitted("tree", data)
    reference = DecisionTreeRegressor(random_state=0, **BUDGETS["tree"]).fit(X_train, y_train)
    np.testing.assert_array_equal(student.predict(X_test), reference.predict(X_test))
    assert student.estimator_.get_depth() == 5


@pytest.mark.parametrize("name", ["tree", "gplearn", "operon"])
def test_expression_reproduces_predictions(name, data):
    X_train, _, X_test, _ = data
    student = fitted(name, data)
    expr = student.expression()
    assert isinstance(expr, sympy.Expr)
    allowed = set(variables(D))
    assert expr.free_symbols <= allowed, f"unexpected symbols {expr.free_symbols - allowed}"
    rtol, atol = EXPRESSION_TOLERANCE[name]
    for X in (X_train, X_test):
        pred = student.predict(X)
        assert pred.shape == (len(X),) and pred.dtype == np.float64
        np.testing.assert_allclose(evaluate_expression(expr, X), pred, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ["gplearn", "operon"])
def test_symbolic_expressions_use_the_relevant_variables(name, data):
    assert fitted(name, data).expression().free_symbols == set(variables(D))


@pytest.mark.parametrize("name", ["tree", "gplearn", "operon"])
def test_complexity_is_a_positive_int(name, data):
    student = fitted(name, data)
    c = student.complexity()
    assert isinstance(c, int) and not isinstance(c, bool) and c > 0
    if name != "tree":
        assert c == count_nodes(student.expression())


def count_piecewise_leaves(expr):
    if isinstance(expr, sympy.Piecewise):
        return sum(count_piecewise_leaves(e) for e, _ in expr.args)
    return 1


def test_tree_complexity_is_its_leaf_count(data):
    X_train, y_train, _, _ = data
    student = student_class("tree")(seed=0, max_leaf_nodes=7, min_samples_leaf=5).fit(X_train, y_train)
    assert student.complexity() == 7
    assert count_piecewise_leaves(student.expression()) == 7
    deeper = fitted("tree", data)
    assert deeper.complexity() == count_piecewise_leaves(deeper.expression())
    assert deeper.complexity() == deeper.estimator_.get_n_leaves()


@pytest.mark.parametrize("name", ["tree", "gplearn", "operon"])
def test_same_seed_gives_identical_predictions(name, data):
    X_train, y_train, X_test, _ = data
    options = dict(BUDGETS[name])
    if name == "tree":  # ties between equally good splits are broken by the random state
        options["max_features"] = 2
    cls = student_class(name)
    a = cls(seed=3, **options).fit(X_train, y_train)
    b = cls(seed=3, **options).fit(X_train, y_train)
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test))
    assert sympy.srepr(a.expression()) == sympy.srepr(b.expression())


def test_seed_reaches_the_estimator(data):
    """The seed is passed as the estimator's random_state (a tree with random feature subsets)."""
    X_train, y_train, X_test, _ = data
    cls = student_class("tree")
    preds = {
        seed: cls(seed=seed, max_depth=3, max_features=1).fit(X_train, y_train).predict(X_test)
        for seed in range(4)
    }
    assert cls(seed=2, max_depth=3, max_features=1).fit(X_train, y_train).estimator_.random_state == 2
    assert any(not np.array_equal(preds[0], preds[s]) for s in (1, 2, 3))


@pytest.mark.parametrize("name", ["tree", "gplearn", "operon"])
def test_unknown_option_is_a_jacdistill_error_naming_it(name):
    with pytest.raises(JacdistillError) as info:
        student_class(name)(seed=0, no_such_option=1)
    message = str(info.value)
    assert "no_such_option" in message and name in message


@pytest.mark.parametrize("name", ["tree", "gplearn", "operon"])
def test_seed_is_not_an_option(name):
    """random_state is set from the seed, so it must not be accepted as an option too."""
    with pytest.raises(JacdistillError, match="random_state"):
        student_class(name)(seed=0, random_state=1)


def test_string_options_are_parsed_as_literals():
    gp = student_class("gplearn")(
        seed=0,
        generations="5",
        function_set="('add', 'mul')",
        parsimony_coefficient="0.01",
        warm_start="False",
    )
    assert gp.options["generations"] == 5 and isinstance(gp.options["generations"], int)
    assert gp.options["function_set"] == ("add", "mul")
    assert gp.options["parsimony_coefficient"] == 0.01
    assert gp.options["warm_start"] is False
    # defaults not given stay as they are
    assert gp.options["population_size"] == student_class("gplearn").defaults["population_size"]
    # text that is no literal stays text
    op = student_class("operon")(seed=0, allowed_symbols="add,mul,variable,constant")
    assert op.options["allowed_symbols"] == "add,mul,variable,constant"


def test_string_options_take_effect_when_fitting(data):
    X_train, y_train, _, _ = data
    tree = student_class("tree")(seed=0, max_depth="2", min_samples_leaf="1").fit(X_train, y_train)
    assert tree.estimator_.get_depth() == 2 and tree.complexity() <= 4
    gp = student_class("gplearn")(
        seed=0, population_size="50", generations="2", function_set="('add', 'mul')"
    ).fit(X_train, y_train)
    assert gp.estimator_.generations == 2
    assert {f.name for f in gp.estimator_._program.program if hasattr(f, "name")} <= {"add", "mul"}
    assert not gp.expression().atoms(sympy.sin, sympy.cos)


# ------------------------------------------------------------------------------------------ pysr


def pysr_class():
    return registry().get("student", "pysr")


# importing pysr (to find out whether Julia is there) warns that torch was imported first
@pytest.mark.filterwarnings("ignore:torch was imported before juliacall")
def test_pysr_student_fits_known_formula(data):
    cls = pysr_class()
    reason = cls.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    X_train, y_train, X_test, y_test = data
    student = cls(seed=0, niterations=15, populations=8, maxsize=15).fit(X_train, y_train)
    assert r2(y_test, student.predict(X_test)) > 0.99
    np.testing.assert_allclose(
        evaluate_expression(student.expression(), X_test), student.predict(X_test), rtol=1e-6, atol=1e-6
    )
    assert student.expression().free_symbols <= set(variables(D))
    assert isinstance(student.complexity(), int) and student.complexity() > 0


@pytest.mark.filterwarnings("ignore:torch was imported before juliacall")
def test_unavailable_pysr_is_reported_as_jacdistill_error():
    cls = pysr_class()
    reason = cls.unavailable_reason()
    if reason is None:
        pytest.skip("pysr is available here")
    assert isinstance(reason, str) and reason
    assert "julia" in reason.lower() or "pysr" in reason.lower()
    with pytest.raises(JacdistillError) as info:
        registry().available("student", "pysr")
    message = str(info.value)
    assert "pysr" in message
    assert "julia" in message.lower() or "pip install" in message
    assert reason in message
    # an available student passes the same gate
    assert registry().available("student", "tree") is student_class("tree")


@pytest.mark.parametrize(
    "name",
    ["add", "sub", "mul", "div", "sqrt", "log", "abs", "neg", "inv", "max", "min", "sin", "cos", "tan"],
)
def test_gplearn_functions_translate_exactly_including_protection(name):
    """Each sympy translation equals gplearn's own function, also where gplearn's protection acts
    (|argument| <= 0.001), so exported formulas match predict everywhere."""
    from gplearn.functions import _function_map

    from jacdistill.plugins.students.gplearn import FUNCTIONS

    gp = _function_map[name]
    values = np.array([-2.0, -0.5, -1e-3, -5e-4, 0.0, 3e-4, 1e-3, 2e-3, 0.7, 3.0])
    args = np.meshgrid(*[values] * gp.arity, indexing="ij")
    args = [a.ravel() for a in args]
    symbols = sympy.symbols(f"a0:{gp.arity}", real=True)
    ours = sympy.lambdify(symbols, FUNCTIONS[name](*symbols), "numpy")
    expected = gp.function(*args)
    with np.errstate(all="ignore"):  # numpy evaluates both branches of a Piecewise
        got = np.broadcast_to(ours(*args), expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_operon_gives_the_same_model_on_one_thread_and_on_two(data):
    """Why ``jobs`` may set Operon's threads: its result does not depend on them."""
    X_train, y_train, X_test, _ = data
    models = []
    for jobs in (1, 2):
        student = student_class("operon")(seed=5, **BUDGETS["operon"])
        student.jobs = jobs
        models.append(student.fit(X_train, y_train))
    assert [m.estimator_.get_params()["n_threads"] for m in models] == [1, 2]
    assert models[0].expression() == models[1].expression()
    np.testing.assert_array_equal(models[0].predict(X_test), models[1].predict(X_test))
