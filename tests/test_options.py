"""Declared option constraints: the vocabulary, its one-line errors, and every plugin's declarations."""

from __future__ import annotations

import re

import numpy as np
import pytest

from jacdistill import Distiller, teacher
from jacdistill.options import (
    Boolean,
    Interval,
    JacdistillError,
    ListOf,
    OneOf,
    PluginOptions,
    Text,
    as_constraint,
)
from jacdistill.registry import registry


@pytest.mark.parametrize(
    "declared, accepted, rejected",
    [
        (Interval(int, 1, None), [1, 7, np.int64(3)], [0, -1, 1.0, 2.5, True, "3", None]),
        (Interval(int, 0, None), [0, 5], [False, True, -1]),
        (
            Interval(float, 0, None, closed="neither"),
            [1e-9, 1, 2.5, np.float32(0.5)],
            [0, -1e-9, True, float("inf"), float("nan"), "1"],
        ),
        (Interval(float, 0, 1, closed="right"), [1, 1.0, 0.5], [0, 0.0, 1.5]),
        (Interval(float, 0, 1, closed="left"), [0, 0.5], [1, 1.0]),
        (Interval(int, None, -1), [-1, -10], [0, 1]),
        (Interval(float, None, None), [-1e300, 0, 3], [float("-inf"), float("nan"), False]),
        (OneOf("jvp", "vjp", "fd"), ["jvp", "fd"], ["JVP", "", 1, None, ["jvp"]]),
        (Boolean, [True, False], [0, 1, "true", None]),
        (Text, ["", "sqlite:///x.db"], [1, None, b"x"]),
        (
            ListOf(Interval(float, 0, None)),
            [[0, 1e-3], (0.0,), [1]],
            [[], (), [-1], [0, "a"], [True], 0.1, "0,1"],
        ),
        (ListOf(Text, allow_empty=True), [[], ["+"]], [[1], "+"]),
        ([Interval(int, 1, None), None], [None, 3], [0, "None"]),
        ([Interval(float, 0, None), OneOf("auto")], ["auto", 0, 0.5], ["Auto", -1, None]),
    ],
)
def test_constraints_accept_and_reject(declared, accepted, rejected):
    constraint = as_constraint(declared)
    assert all(constraint.accepts(v) for v in accepted), [v for v in accepted if not constraint.accepts(v)]
    assert not any(constraint.accepts(v) for v in rejected), [v for v in rejected if constraint.accepts(v)]


@pytest.mark.parametrize(
    "declared, description",
    [
        (Interval(int, 1, None), "an integer >= 1"),
        (Interval(float, 0, None, closed="neither"), "a number > 0"),
        (Interval(float, None, 1, closed="neither"), "a number < 1"),
        (Interval(int, None, 10), "an integer <= 10"),
        (Interval(float, 0, 1, closed="right"), "a number in (0, 1]"),
        (Interval(int, 1, 9), "an integer in [1, 9]"),
        (Interval(float, None, None), "a number"),
        (OneOf("jvp", "vjp"), "one of 'jvp', 'vjp'"),
        (OneOf("auto"), "'auto'"),
        (Boolean, "true or false"),
        (Text, "text"),
        (ListOf(Interval(float, 0, None)), "a non-empty list, each item a number >= 0"),
        (ListOf(Text, allow_empty=True), "a list, each item text"),
        ([Interval(int, 1, None), None], "an integer >= 1 or None"),
    ],
)
def test_constraints_describe_themselves(declared, description):
    assert as_constraint(declared).description == description


def test_interval_rejects_an_unknown_kind_or_closed():
    with pytest.raises(ValueError):
        Interval(str, 0, None)
    with pytest.raises(ValueError):
        Interval(int, 0, None, closed="open")


class Toy(PluginOptions):
    kind, name = "toy", "demo"
    defaults = {"n": 1, "lo": 0.1, "hi": 1.0, "tag": None, "free": "x"}
    constraints = {
        "n": Interval(int, 1, None),
        "lo": Interval(float, 0, None, closed="neither"),
        "hi": Interval(float, 0, None, closed="neither"),
        "tag": [Text, None],
    }

    @classmethod
    def check_options(cls, options):
        if not options["lo"] < options["hi"]:
            raise cls.option_error("lo", f"below hi={options['hi']!r}", options["lo"])


def error(given):
    with pytest.raises(JacdistillError) as info:
        Toy.resolve_options(given)
    return str(info.value)


def test_resolve_options_checks_values_after_parsing_them():
    assert Toy.resolve_options({"n": "3", "tag": "None", "free": 5}) == {
        "n": 3,
        "lo": 0.1,
        "hi": 1.0,
        "tag": None,
        "free": 5,
    }
    assert error({"n": "0"}) == "toy 'demo': option 'n' must be an integer >= 1, got 0"
    assert error({"n": "true"}) == "toy 'demo': option 'n' must be an integer >= 1, got True"
    assert error({"n": 2.0}) == "toy 'demo': option 'n' must be an integer >= 1, got 2.0"
    assert error({"tag": 3}) == "toy 'demo': option 'tag' must be text or None, got 3"


def test_check_options_relates_options_after_each_is_checked():
    assert error({"lo": 2, "hi": 1}) == "toy 'demo': option 'lo' must be below hi=1, got 2"
    assert error({"lo": 0, "hi": 1}).startswith("toy 'demo': option 'lo' must be a number > 0")


def test_errors_are_one_line_even_for_a_value_shown_on_several():
    class Shown:
        def __repr__(self):
            return "first\nsecond"

    message = error({"n": Shown()})
    assert "\n" not in message and message.endswith("got first second")


# ------------------------------------------------------------------------------- every plugin

PLUGINS = registry().all()


@pytest.mark.filterwarnings("ignore:torch was imported before juliacall")  # pysr's availability
@pytest.mark.parametrize("info", PLUGINS, ids=[f"{i.kind}-{i.name}" for i in PLUGINS])
def test_defaults_meet_their_own_constraints(info):
    cls = info.cls
    for key, value in cls.defaults.items():
        if key in cls.constraints:
            constraint = as_constraint(cls.constraints[key])
            assert constraint.accepts(value), f"{key}={value!r} is not {constraint.description}"
    if info.source == "jacdistill":  # built-ins declare every option they choose a default for
        assert set(cls.defaults) <= set(cls.constraints), set(cls.defaults) - set(cls.constraints)
    if cls.unavailable_reason() is None:
        assert set(cls.constraints) <= cls.accepted_options(), set(cls.constraints) - cls.accepted_options()


BAD = [  # (kind, name, options, what the message says)
    ("regularizer", "jacobian", {"backend": "fast"}, "option 'backend' must be one of 'auto'"),
    ("regularizer", "hutchinson", {"probes": 0}, "option 'probes' must be an integer >= 1, got 0"),
    ("regularizer", "hutchinson", {"rows": 1.5}, "option 'rows' must be a number in (0, 1], got 1.5"),
    ("regularizer", "hessian", {"exact_max_dim": -1}, "option 'exact_max_dim' must be an integer >= 0"),
    ("student", "tree", {"max_depth": 0}, "option 'max_depth' must be an integer >= 1 or None, got 0"),
    ("student", "gplearn", {"population_size": 0}, "option 'population_size' must be an integer >= 1, got 0"),
    ("student", "gplearn", {"parsimony_coefficient": -1}, "must be a number >= 0 or 'auto', got -1"),
    (
        "student",
        "gplearn",
        {"function_set": ("add", "pow")},
        "option 'function_set' must be a non-empty list",
    ),
    ("student", "gplearn", {"p_crossover": 0.9, "p_point_mutation": 0.5}, "must sum to at most 1, got 1.55"),
    ("student", "operon", {"max_length": 2}, "option 'max_length' must be an integer >= 3, got 2"),
    ("student", "operon", {"generations": 1.5}, "option 'generations' must be an integer >= 1, got 1.5"),
    ("student", "pysr", {"maxsize": 5}, "option 'maxsize' must be an integer >= 7, got 5"),
    ("student", "pysr", {"parallelism": None}, "must be 'serial' while deterministic is true, got None"),
    (
        "tuner",
        "grid",
        {"grid": [-1]},
        "option 'grid' must be a non-empty list, each item a number >= 0, got [-1]",
    ),
    ("tuner", "grid", {"restarts": "yes"}, "option 'restarts' must be true or false, got 'yes'"),
    ("tuner", "constrained", {"lo": 2, "hi": 1}, "option 'lo' must be below hi=1, got 2"),
    ("tuner", "constrained", {"max_trainings": 2}, "option 'max_trainings' must be an integer >= 3, got 2"),
    ("tuner", "adaptive", {"growth": 1}, "option 'growth' must be a number > 1, got 1"),
    ("tuner", "optuna", {"lo": 1, "hi": 1}, "option 'lo' must be below hi=1, got 1"),
    ("tuner", "optuna", {"n_trials": True}, "option 'n_trials' must be an integer >= 1, got True"),
]


@pytest.mark.filterwarnings("ignore:torch was imported before juliacall")
@pytest.mark.parametrize("kind, name, options, says", BAD, ids=[f"{b[1]}-{'-'.join(b[2])}" for b in BAD])
def test_bad_values_are_one_line_errors_naming_the_plugin(kind, name, options, says, monkeypatch):
    cls = registry().get(kind, name)
    if cls.unavailable_reason():  # its estimator's parameters are unknowable: check the declared ones
        monkeypatch.setattr(
            cls, "accepted_options", classmethod(lambda c: set(c.defaults) | set(c.constraints))
        )
    with pytest.raises(JacdistillError) as info:
        cls.resolve_options(options)
    message = str(info.value)
    assert message.startswith(f"{kind} '{name}': ") and says in message and "\n" not in message


@pytest.mark.parametrize(
    "settings, says",
    [
        (
            {"student": "gplearn", "student_options": {"population_size": 0}},
            "'gplearn': option 'population_size'",
        ),
        (
            {"regularizer": "hutchinson", "regularizer_options": {"probes": 0}},
            "'hutchinson': option 'probes'",
        ),
        ({"tuner": "grid", "tuner_options": {"grid": [-1]}}, "tuner 'grid': option 'grid'"),
        ({"tuner": "constrained", "tuner_options": {"lo": 2, "hi": 1}}, "tuner 'constrained': option 'lo'"),
    ],
    ids=["gplearn", "hutchinson", "grid", "constrained"],
)
def test_bad_values_fail_before_any_training(settings, says, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a teacher was trained")

    monkeypatch.setattr(teacher, "train", no_training)
    X = np.random.default_rng(0).normal(size=(30, 2))
    settings = {"regularizer": "jacobian", "student": "tree", "lam": "auto", **settings}
    with pytest.raises(JacdistillError, match=re.escape(says)):
        Distiller(epochs=2, **settings).fit(X, X[:, 0])
