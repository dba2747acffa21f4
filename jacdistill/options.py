"""Errors users can fix and plugin options: no heavy imports, so the CLI starts fast."""
from __future__ import annotations

import ast
from typing import Any, ClassVar


class JacdistillError(Exception):
    """An error the user can fix (bad input, unknown plugin, unavailable tool): one line, exit 2."""


class PluginOptions:
    """Options given as ``KEY=VALUE`` strings or keyword arguments, checked against the defaults.

    ``defaults`` lists every option a plugin accepts; a value given as a string is parsed as a
    Python literal (``3``, ``0.5``, ``True``, ``("add", "mul")``) and otherwise kept as text.
    """

    kind: ClassVar[str] = "plugin"
    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

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
                f"{cls.kind} '{cls.name}' has no option '{unknown[0]}'; its options: {cls.options_hint()}")
        return {**cls.defaults, **{k: parse_option_value(v) for k, v in given.items()}}

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
