"""Hook specifications: what a jacdistill plugin module may implement.

A plugin is a module named in the ``jacdistill`` entry-point group. It implements any of these
hooks with ``@jacdistill.hookimpl``; each ``register_*`` class hook receives a ``register`` callable
and passes it the classes the plugin contributes, and ``register_commands`` receives the click group.
"""
import pluggy

hookspec = pluggy.HookspecMarker("jacdistill")
hookimpl = pluggy.HookimplMarker("jacdistill")


@hookspec
def register_regularizers(register):
    """Register :class:`jacdistill.contracts.Regularizer` subclasses: ``register(cls)``."""


@hookspec
def register_students(register):
    """Register :class:`jacdistill.contracts.Student` subclasses: ``register(cls)``."""


@hookspec
def register_tuners(register):
    """Register :class:`jacdistill.contracts.Tuner` subclasses: ``register(cls)``."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``jacdistill`` command line: ``cli.add_command(...)``."""
