"""Errors users can fix and plugin options: no heavy imports, so the CLI starts fast."""

from __future__ import annotations

import ast
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

# What a student may fit (the estimators' ``student_inputs``): the teacher's standardized inputs, or
# inputs scaled to unit variance but not centred; here so that the CLI and sweeps check it unloaded.
STUDENT_INPUTS = ("standardized", "scaled")


class JacdistillError(Exception):
    """An error the user can fix (bad input, unknown plugin, unavailable tool): one line, exit 2."""


class Constraint(ABC):
    """The values an option accepts, with a description that completes "must be ..."."""

    description: str = ""

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """True when ``value`` meets this constraint."""


class Satisfies(Constraint):
    """The values for which ``test`` is true: ``Satisfies(callable, "a function")``."""

    def __init__(self, test: Callable[[Any], bool], description: str):
        self.test, self.description = test, description

    def accepts(self, value):
        return bool(self.test(value))


Boolean = Satisfies(lambda value: isinstance(value, bool), "true or false")
Text = Satisfies(lambda value: isinstance(value, str), "text")
_NONE = Satisfies(lambda value: value is None, "None")


class Interval(Constraint):
    """Integers (``int``; True and False are not) or finite numbers (``float``, integers included)
    from ``low`` to ``high``, None for no bound; ``closed``: which bounds belong to it, "both",
    "left", "right" or "neither". ``Interval(int, 1, None)`` is "an integer >= 1"."""

    def __init__(self, kind: type, low: float | None, high: float | None, closed: str = "both"):
        if kind not in (int, float) or closed not in ("both", "left", "right", "neither"):
            raise ValueError(
                f"Interval({kind!r}, closed={closed!r}): the kind is int or float, "
                f"closed is 'both', 'left', 'right' or 'neither'"
            )
        self.kind, self.low, self.high = kind, low, high
        self.left_closed, self.right_closed = closed in ("both", "left"), closed in ("both", "right")
        noun = "an integer" if kind is int else "a number"
        if low is not None and high is not None:
            self.description = (
                f"{noun} in {'[' if self.left_closed else '('}{low}, "
                f"{high}{']' if self.right_closed else ')'}"
            )
        elif low is not None:
            self.description = f"{noun} {'>=' if self.left_closed else '>'} {low}"
        elif high is not None:
            self.description = f"{noun} {'<=' if self.right_closed else '<'} {high}"
        else:
            self.description = noun

    def accepts(self, value):
        kind = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or not -math.inf < value < math.inf:
            return False
        above = self.low is None or (value >= self.low if self.left_closed else value > self.low)
        below = self.high is None or (value <= self.high if self.right_closed else value < self.high)
        return above and below


class OneOf(Constraint):
    """One of the given words: ``OneOf("jvp", "vjp", "fd")``."""

    def __init__(self, *words: str):
        self.words = words
        listed = ", ".join(map(repr, words))
        self.description = listed if len(words) == 1 else f"one of {listed}"

    def accepts(self, value):
        return isinstance(value, str) and value in self.words


class ListOf(Constraint):
    """A list (or tuple) whose items each meet ``item``; not empty unless ``allow_empty``."""

    def __init__(self, item: Any, allow_empty: bool = False):
        self.item, self.allow_empty = as_constraint(item), allow_empty
        self.description = f"a {'' if allow_empty else 'non-empty '}list, each item {self.item.description}"

    def accepts(self, value):
        return (
            isinstance(value, (list, tuple))
            and (self.allow_empty or len(value) > 0)
            and all(self.item.accepts(v) for v in value)
        )


class AnyOf(Constraint):
    """A value that meets one of the alternatives; what a list of constraints declares."""

    def __init__(self, *alternatives: Any):
        self.alternatives = [as_constraint(a) for a in alternatives]
        self.description = " or ".join(a.description for a in self.alternatives)

    def accepts(self, value):
        return any(a.accepts(value) for a in self.alternatives)


def as_constraint(declared: Any) -> Constraint:
    """A declared constraint as a Constraint: a list declares alternatives, None the value None."""
    if isinstance(declared, list):
        return AnyOf(*declared)
    return _NONE if declared is None else declared


class PluginOptions:
    """Options given as ``KEY=VALUE`` strings or keyword arguments, checked against the defaults.

    ``defaults`` lists every option a plugin accepts; a value given as a string is parsed as a
    Python literal (``3``, ``0.5``, ``True``, ``("add", "mul")``) and otherwise kept as text.
    ``constraints`` declares what values an option accepts, as a constraint or a list of
    alternatives (None: the value None), e.g. ``{"probes": Interval(int, 1, None),
    "storage": [Text, None]}``; ``check_options`` checks how options relate to each other.
    """

    kind: ClassVar[str] = "plugin"
    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    constraints: ClassVar[dict[str, Any]] = {}

    @classmethod
    def accepted_options(cls) -> set[str]:
        return set(cls.defaults)

    @classmethod
    def options_hint(cls) -> str:
        """The accepted options, as an error message lists them."""
        return ", ".join(sorted(cls.accepted_options())) or "none"

    @classmethod
    def resolve_options(cls, given: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - cls.accepted_options())
        if unknown:
            raise JacdistillError(
                f"{cls.kind} '{cls.name}' has no option '{unknown[0]}'; its options: {cls.options_hint()}"
            )
        parsed = {key: parse_option_value(value) for key, value in given.items()}
        for key, value in parsed.items():
            if key in cls.constraints:
                constraint = as_constraint(cls.constraints[key])
                if not constraint.accepts(value):
                    raise cls.option_error(key, constraint.description, value)
        options = {**cls.defaults, **parsed}
        cls.check_options(options)
        return options

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Raise JacdistillError (see ``option_error``) where options, each within its
        constraints, do not fit together; by default any combination does."""

    @classmethod
    def option_error(cls, key: str, description: str, value: Any) -> JacdistillError:
        """The one-line error for option ``key``, which must be ``description`` but is ``value``."""
        shown = repr(value).replace("\n", " ")
        return JacdistillError(f"{cls.kind} '{cls.name}': option '{key}' must be {description}, got {shown}")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this plugin cannot run here (missing tool or package), or None if it can."""
        return None


def parse_option_value(value: Any) -> Any:
    """A Python literal (``3``, ``[0,1e-3]``, ``True``), the TOML/JSON words ``true`` and
    ``false``, or the text itself."""
    if not isinstance(value, str):
        return value
    if value in ("true", "false"):
        return value == "true"
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def parse_key_values(pairs: tuple[str, ...] | list[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; a malformed pair is a JacdistillError."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise JacdistillError(f"{flag} expects KEY=VALUE, got '{pair}'")
        options[key.strip()] = parse_option_value(value.strip())
    return options
