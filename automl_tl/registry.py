"""Discovers modality plugins through entry points, lazily and forgivingly.

Built-in plugins are ordinary distributions under ``plugins/`` registering in the same group a
third party uses; nothing here knows a modality by name. Discovery reads entry-point metadata
only; a plugin's module is imported the first time it is asked for. A plugin that fails to import,
or that is not a `ModalityPlugin`, is reported as broken with its error and the rest keep working.
What a plugin hands the core is checked against the contract where it enters (`expect`,
`catalogue`, `check_data`), so a plugin returning the wrong type is one clear error naming it,
not a crash deep in the core.
When two distributions register the same name, the project's own distributions win, then the
first distribution name in alphabetical order, with a warning naming the one that lost.

Backbone plugins (group ``automl_tl.backbones``) are discovered the same way; `backbone_builder`
is the one place that decides whether a backbone name goes to one of them or to the modality.
"""

from __future__ import annotations

import dataclasses
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from automl_tl.contract import (
    BACKBONE_ENTRY_POINT_GROUP,
    ENTRY_POINT_GROUP,
    BackboneInfo,
    BackbonePlugin,
    DataRequest,
    Example,
    LabelledData,
    ModalityPlugin,
)
from automl_tl.datafiles import tidy_labels
from automl_tl.errors import UserError
from automl_tl.provenance import Provenance, of_entry_point
from automl_tl.vocabulary import DIMENSIONS

T = TypeVar("T")

OWN_DISTRIBUTION_PREFIX = "automl-tl"
"""Distributions of this project (``automl-tl-speech``...) win name clashes with third parties."""


class PluginWarning(UserWarning):
    """A plugin could not be used; the tool carries on without it."""


Plugin = ModalityPlugin | BackbonePlugin


@dataclass
class PluginEntry:
    """A discovered plugin: metadata now, the plugin object on first `load()`."""

    name: str
    distribution: str
    version: str
    entry_point: EntryPoint
    shadows: list[str] = field(default_factory=list)
    _plugin: Plugin | None = None
    error: str | None = None
    exception: BaseException | None = None
    """What the plugin raised when it was loaded, kept so ``--debug`` can show its traceback."""

    @property
    def provenance(self) -> Provenance:
        return of_entry_point(self.entry_point)

    def load(self) -> Plugin:
        """Import and instantiate the plugin once; raise `UserError` if it is broken."""
        if self._plugin is None and self.error is None:
            try:
                self._plugin = _instantiate(self.entry_point)
            except Exception as exc:  # a third-party plugin may raise anything on import
                self.error, self.exception = where(exc), exc
        if self._plugin is None:
            raise UserError(
                f"plugin {self.name!r} from {self.distribution} is broken: {self.error}",
                hint=f"reinstall or uninstall {self.distribution}; AUTOML_TL_DEBUG=1 shows the traceback",
            ) from self.exception
        return self._plugin

    def try_load(self) -> Plugin | None:
        """`load()` that warns instead of raising, for listings."""
        try:
            return self.load()
        except UserError as exc:
            warnings.warn(str(exc), PluginWarning, stacklevel=2)
            return None


def where(exc: BaseException) -> str:
    """``NameError: name 'x' is not defined (…/plugin.py, line 12)``: the error and the line that raised it."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{message} ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{message} ({frames[-1].filename}, line {frames[-1].lineno})" if frames else message


def _instantiate(entry_point: EntryPoint) -> Plugin:
    target = entry_point.load()
    plugin = target() if isinstance(target, type) else target
    kind = BackbonePlugin if entry_point.group == BACKBONE_ENTRY_POINT_GROUP else ModalityPlugin
    if not isinstance(plugin, kind):
        raise TypeError(f"entry point {entry_point.value!r} gives {type(plugin).__name__}, not a {kind.__name__}")
    if plugin.name != entry_point.name:
        raise TypeError(f"entry point is named {entry_point.name!r} but the plugin calls itself {plugin.name!r}")
    if isinstance(plugin, BackbonePlugin):
        if not isinstance(getattr(plugin, "modality", None), str):
            raise TypeError("its modality is not a str naming the modality it adds backbones to")
        return plugin
    for attribute in ("description", "default_backbone", "default_dataset"):
        if not isinstance(getattr(plugin, attribute, None), str):
            raise TypeError(f"its {attribute} is {type(getattr(plugin, attribute, None)).__name__}, not str")
    if plugin.options_type is not None and not dataclasses.is_dataclass(plugin.options_type):
        raise TypeError(f"its options_type {plugin.options_type!r} is not a dataclass")
    for method in ("search_space", "default_recipe"):
        if not isinstance(answer := getattr(plugin, method)(), Mapping):
            raise TypeError(f"{method}() returned {type(answer).__name__}, not a mapping")
    return plugin


def expect(plugin: Plugin, call: str, value: T, kind: type | tuple[type, ...]) -> T:
    """``value`` when it is what the contract promises from ``call``, else a `UserError` naming the plugin."""
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _broken(plugin, f"{call} returned {type(value).__name__}, not {names}")
    return value


def catalogue(plugin: Plugin) -> list[BackboneInfo]:
    """The plugin's backbones, checked; a plugin that fails to list them is a `UserError` (listings show it broken)."""
    try:
        items = list(plugin.backbones())
    except UserError:
        raise
    except Exception as exc:  # listing must survive a third-party plugin's bug
        raise _broken(plugin, f"backbones() raised {where(exc)}") from exc
    return [expect(plugin, "backbones()", item, BackboneInfo) for item in items]


def starting_points(plugin: ModalityPlugin) -> list[Mapping[str, Any]]:
    """The plugin's starting points, checked: each a mapping of the core's search dimensions."""
    try:
        points = list(plugin.starting_points())
    except UserError:
        raise
    except Exception as exc:  # a third-party plugin's bug must read as one
        raise _broken(plugin, f"starting_points() raised {where(exc)}") from exc
    for point in points:
        expect(plugin, "starting_points()", point, Mapping)
        unknown = sorted(set(point) - set(DIMENSIONS))
        if unknown:
            raise _broken(plugin, f"starting_points() names unknown search dimension(s): {', '.join(map(str, unknown))}")
    return points


def check_data(plugin: ModalityPlugin, data: Any, request: DataRequest) -> LabelledData:
    """What ``load_data`` returned for ``request``, checked down to each example, with tidy labels.

    Labels and groups must be strings, and a test path the user gave must have become the test
    split: a plugin that drops it would score the search on data the user did not choose.
    """
    expect(plugin, "load_data()", data, LabelledData)
    for part in (data.examples, data.test or [], data.validation or []):
        for example in part:
            if not (isinstance(example, Example) and isinstance(example.label, str)
                    and (example.group is None or isinstance(example.group, str))):
                raise _broken(plugin, f"load_data() gave {example!r:.120}, not an Example with a str label and group")
    if request.test_path is not None and data.test is None:
        raise UserError(f"plugin {plugin.name!r} does not read a separate test set: it ignored --test {request.test_path}",
                        hint="drop --test (the test split is then held out of --data), or ask the plugin's authors to support it")
    return tidy_labels(data)


def _broken(plugin: Plugin, problem: str) -> UserError:
    return UserError(f"plugin {plugin.name!r} is broken: {problem}", hint="report it to the plugin's authors")


def _precedence(entry: PluginEntry) -> tuple[bool, str]:
    return (not entry.distribution.startswith(OWN_DISTRIBUTION_PREFIX), entry.distribution)


def discover(group: str = ENTRY_POINT_GROUP) -> dict[str, PluginEntry]:
    """All plugins of an entry-point group by name, without importing any of them."""
    by_name: dict[str, list[PluginEntry]] = {}
    for ep in entry_points(group=group):
        dist = ep.dist
        entry = PluginEntry(
            name=ep.name,
            distribution=dist.name if dist else "unknown",
            version=dist.version if dist else "?",
            entry_point=ep,
        )
        by_name.setdefault(ep.name, []).append(entry)
    chosen: dict[str, PluginEntry] = {}
    for name in sorted(by_name):
        candidates = sorted(by_name[name], key=_precedence)
        # the same distribution seen twice on sys.path is one plugin, not a clash
        losers = sorted({c.distribution for c in candidates[1:]} - {candidates[0].distribution})
        winner = candidates[0]
        if losers:
            winner.shadows = losers
            warnings.warn(
                f"plugin {name!r} is registered by {winner.distribution} and {', '.join(losers)}; "
                f"using {winner.distribution}",
                PluginWarning,
                stacklevel=2,
            )
        chosen[name] = winner
    return chosen


def get_plugin(name: str) -> ModalityPlugin:
    """The plugin for a modality, or a `UserError` listing the ones that exist."""
    plugins = discover()
    if name not in plugins:
        known = ", ".join(sorted(plugins)) or "none installed"
        raise UserError(f"unknown modality {name!r} (available: {known})", hint="see `automl-tl plugins list`")
    plugin = plugins[name].load()
    assert isinstance(plugin, ModalityPlugin)  # _instantiate checked it against its group
    return plugin


def backbone_plugins(modality: str) -> list[BackbonePlugin]:
    """The installed backbone plugins adding to ``modality``; a broken one is a warning and left out."""
    found = []
    for entry in discover(BACKBONE_ENTRY_POINT_GROUP).values():
        plugin = entry.try_load()
        if isinstance(plugin, BackbonePlugin) and plugin.modality == modality:
            found.append(plugin)
    return found


def backbone_builder(plugin: ModalityPlugin, name: str) -> Plugin:
    """Who builds backbone ``name``: the first backbone plugin that `handles` it, else the modality plugin."""
    for extra in backbone_plugins(plugin.name):
        try:
            if extra.handles(name):
                return extra
        except Exception as exc:  # a third-party plugin's bug must read as one
            raise _broken(extra, f"handles({name!r}) raised {where(exc)}") from exc
    return plugin


def provenance(plugin: Plugin) -> Provenance:
    """The installed identity of a loaded plugin (distribution, version, source hash)."""
    group = BACKBONE_ENTRY_POINT_GROUP if isinstance(plugin, BackbonePlugin) else ENTRY_POINT_GROUP
    entry = discover(group).get(plugin.name)
    if entry is None:
        return Provenance(plugin.name, "unregistered", "?", None)
    return entry.provenance
