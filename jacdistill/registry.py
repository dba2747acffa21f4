"""Plugin manager: loads the ``jacdistill`` entry-point group and indexes what plugins register.

Built-in plugins come through the same entry points as third-party ones, so one code path serves
both. A plugin module that fails to import is reported as a warning naming it; the rest load.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from jacdistill import hookspecs
from jacdistill.contracts import Regularizer, Student
from jacdistill.options import JacdistillError, PluginOptions
from jacdistill.search import Tuner

ENTRY_POINT_GROUP = "jacdistill"
KINDS = {  # kind -> (contract, hook that registers it)
    "regularizer": (Regularizer, "register_regularizers"),
    "student": (Student, "register_students"),
    "tuner": (Tuner, "register_tuners"),
}


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered something invalid."""


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    cls: type[PluginOptions]
    source: str  # distribution that provides it

    def as_dict(self) -> dict:
        reason = self.cls.unavailable_reason()
        return {
            "kind": self.kind,
            "name": self.name,
            "source": self.source,
            "available": reason is None,
            "reason": reason,
        }


class Registry:
    def __init__(self):
        self.manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.manager.add_hookspecs(hookspecs)
        self._source: dict[str, str] = {}
        self._plugins: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in KINDS}
        found = {(ep.name, ep.value): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}.values()
        # jacdistill's own first: an outside plugin cannot silently replace a built-in
        for ep in sorted(found, key=lambda ep: ep.dist is None or ep.dist.name != "jacdistill"):
            source = ep.dist.name if ep.dist else "unknown"
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                warnings.warn(
                    f"plugin '{ep.name}' from {source} failed to load: {type(exc).__name__}: {exc}",
                    PluginWarning,
                    stacklevel=2,
                )
                continue
            plugin = ep.name if source == "jacdistill" else f"{source}:{ep.name}"
            if self.manager.is_registered(module) or self.manager.has_plugin(plugin):
                continue
            try:
                self.manager.register(module, name=plugin)
            except pluggy.PluginValidationError as exc:
                warnings.warn(
                    f"plugin '{ep.name}' from {source} is invalid: {exc}", PluginWarning, stacklevel=2
                )
                continue
            self._source[plugin] = source
        for kind, (contract, hook) in KINDS.items():
            for impl in getattr(self.manager.hook, hook).get_hookimpls():
                impl.function(register=functools.partial(self._add, kind, contract, impl.plugin_name))

    def _add(self, kind: str, contract: type[PluginOptions], plugin: str, cls: type[PluginOptions]) -> None:
        source = self._source.get(plugin, "unknown")
        if not (isinstance(cls, type) and issubclass(cls, contract) and cls.name):
            warnings.warn(
                f"plugin '{plugin}' from {source} registered {cls!r}, which is not a named "
                f"{contract.__name__} subclass; ignored",
                PluginWarning,
                stacklevel=2,
            )
            return
        known = self._plugins[kind].get(cls.name)
        if known is not None:
            warnings.warn(
                f"plugin '{plugin}' from {source} registers {kind} '{cls.name}', already "
                f"provided by {known.source}; ignored",
                PluginWarning,
                stacklevel=2,
            )
            return
        self._plugins[kind][cls.name] = PluginInfo(kind, cls.name, cls, source)

    def add_commands(self, group) -> None:
        """Let each plugin add its commands to the click ``group`` (the ``register_commands`` hook).

        A plugin whose hook raises is a warning and adds nothing; one that takes a command name
        already in use (a built-in's or an earlier plugin's) is a warning and keeps the old one.
        """
        owner = {name: "jacdistill" for name in group.commands}
        for impl in self.manager.hook.register_commands.get_hookimpls():
            source = self._source.get(impl.plugin_name, "unknown")
            plugin = impl.plugin_name.removeprefix(f"{source}:")  # the entry point's name
            before = dict(group.commands)
            try:
                impl.function(**{arg: group for arg in impl.argnames})
            except Exception as exc:  # a broken plugin must not take the command line down
                warnings.warn(
                    f"plugin '{plugin}' from {source} failed to add its commands: "
                    f"{type(exc).__name__}: {exc}",
                    PluginWarning,
                    stacklevel=2,
                )
                added = {}
            else:
                added = {name: cmd for name, cmd in group.commands.items() if before.get(name) is not cmd}
            group.commands.clear()
            group.commands.update(before)
            for name, cmd in added.items():
                if name in before:
                    warnings.warn(
                        f"plugin '{plugin}' from {source} adds command '{name}', already "
                        f"provided by {owner[name]}; ignored",
                        PluginWarning,
                        stacklevel=2,
                    )
                    continue
                group.commands[name] = cmd
                owner[name] = source

    def names(self, kind: str) -> list[str]:
        return sorted(self._plugins[kind])

    def get(self, kind: str, name: str) -> type[PluginOptions]:
        try:
            return self._plugins[kind][name].cls
        except KeyError:
            known = ", ".join(self.names(kind)) or "none installed"
            raise JacdistillError(f"unknown {kind} '{name}'; known: {known}") from None

    def available(self, kind: str, name: str) -> type[PluginOptions]:
        """The class for ``name``, or a JacdistillError saying why it cannot run here."""
        cls = self.get(kind, name)
        reason = cls.unavailable_reason()
        if reason:
            raise JacdistillError(f"{kind} '{name}' {reason}")
        return cls

    def regularizer(self, name: str) -> type[Regularizer]:
        return self.available("regularizer", name)  # type: ignore[return-value]  # checked by _add

    def student(self, name: str) -> type[Student]:
        return self.available("student", name)  # type: ignore[return-value]

    def tuner(self, name: str) -> type[Tuner]:
        return self.available("tuner", name)  # type: ignore[return-value]

    def all(self) -> list[PluginInfo]:
        return [info for kind in KINDS for _, info in sorted(self._plugins[kind].items())]


@functools.cache
def registry() -> Registry:
    """The process-wide registry, built on first use."""
    return Registry()
