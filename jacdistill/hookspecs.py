"""Hook specifications: what a jacdistill plugin module may implement.

A plugin is a module named in the ``jacdistill`` entry-point group. It implements any of these
hooks with ``@jacdistill.hookimpl``; each ``register_*`` class hook receives a ``register`` callable
and passes it the classes the plugin contributes, and ``register_commands`` receives the click group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # the hooks' types only: this module stays light, the CLI imports it
    import click

    from jacdistill.contracts import Regularizer, Student
    from jacdistill.search import Tuner

hookspec = pluggy.HookspecMarker("jacdistill")
hookimpl = pluggy.HookimplMarker("jacdistill")


@hookspec
def register_regularizers(register: Callable[[type[Regularizer]], None]) -> None:
    """Register :class:`jacdistill.contracts.Regularizer` subclasses: ``register(cls)``."""


@hookspec
def register_students(register: Callable[[type[Student]], None]) -> None:
    """Register :class:`jacdistill.contracts.Student` subclasses: ``register(cls)``."""


@hookspec
def register_tuners(register: Callable[[type[Tuner]], None]) -> None:
    """Register :class:`jacdistill.search.Tuner` subclasses: ``register(cls)``."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``jacdistill`` command line: ``cli.add_command(...)``."""
