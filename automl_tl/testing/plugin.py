"""`check_plugin`: the whole kit on one modality plugin, check by check (see `automl_tl.testing`)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl_tl.config import plugin_options, resolve
from automl_tl.contract import ENTRY_POINT_GROUP, DataRequest, LabelledData, ModalityPlugin
from automl_tl.datahome import data_home as default_data_home
from automl_tl.registry import backbone_builder, backbone_plugins, catalogue, check_data, discover, expect
from automl_tl.testing.report import CheckReport

IMPORT_SECONDS = 2.0
"""Longest a plugin's entry-point module may take to import: ``plugins list`` imports every plugin."""
HEAVY_MODULES = ("torch", "transformers", "timm", "torchvision", "tensorflow", "jax")
"""Modules a plugin must import only inside the methods that need them."""


def check_plugin(
    plugin: ModalityPlugin,
    *,
    data: Path | None = None,
    backbones: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    data_home: Path | None = None,
    raise_on_failure: bool = True,
) -> CheckReport:
    """Run every check on ``plugin``; raise `PluginCheckFailed` listing every problem (unless told not to).

    ``data`` is what ``--data`` would be (None: the plugin's default data); ``backbones`` the names
    to build (None: every backbone its catalogue, and its backbone plugins', say is available
    offline); ``options`` its options as a recipe's ``[options]`` table would give them.
    """
    report = CheckReport(plugin.name)
    with report.check("entry point") as check:
        check.problems += entry_point_problems(plugin)
    with report.check("import cost") as check:
        check.problems += import_problems(type(plugin).__module__)
    chosen: Any = None
    with report.check("options") as check:
        config = resolve(plugin, {}, {"modality": plugin.name, "options": dict(options or {})}, "options")
        chosen = plugin_options(plugin, config.options)
    loaded: LabelledData | None = None
    with report.check("load_data") as check:
        request = DataRequest(path=data, data_home=data_home or default_data_home(), options=chosen)
        loaded = check_data(plugin, plugin.load_data(request), request)
        check.problems += data_problems(loaded)
    if loaded is None or not loaded.examples or not report.checks[2].ok:  # nothing to build or feed a backbone
        return report.raise_if_failed() if raise_on_failure else report
    items = [example.item for example in loaded.examples]
    names: list[str] = []
    with report.check("backbones") as check:
        names = list(backbones) if backbones is not None else offline_backbones(plugin)
        if not names:
            check.problems.append("no backbone is available offline: pass the names to check (--backbone)")
    for name in names:
        with report.check(f"backbone {name}") as check:
            from automl_tl.backbone import Backbone
            from automl_tl.testing.network import check_backbone

            builder = backbone_builder(plugin, name)
            built = expect(builder, "build_backbone()", builder.build_backbone(name, chosen), Backbone)
            check.notes += built.notes
            check.problems += check_backbone(built, items)
            if not check.problems:
                check.problems += fingerprint_problems(builder, name, chosen, built, items[0])
            if not check.problems and builder is plugin:
                check.problems += preprocessor_problems(plugin, name, chosen, built, items[0])
    return report.raise_if_failed() if raise_on_failure else report


def offline_backbones(plugin: ModalityPlugin) -> list[str]:
    """What ``plugins list`` marks available offline for the modality: its own catalogue and its backbone plugins'."""
    sources = [plugin, *backbone_plugins(plugin.name)]
    return [info.name for source in sources for info in catalogue(source) if info.available_offline]


def entry_point_problems(plugin: ModalityPlugin) -> list[str]:
    """The plugin is registered under its own name and the entry point loads this class."""
    cls = type(plugin)
    declare = (f'declare [project.entry-points."{ENTRY_POINT_GROUP}"] {plugin.name} = "{cls.__module__}:{cls.__name__}" '
               "in pyproject.toml and pip install -e the package")
    entry = discover().get(plugin.name)
    if entry is None:
        return [f"no entry point named {plugin.name!r} in the group {ENTRY_POINT_GROUP}: {declare}"]
    loaded = type(entry.load())
    if (loaded.__module__, loaded.__qualname__) != (cls.__module__, cls.__qualname__):
        return [f"the entry point {plugin.name!r} ({entry.distribution}) loads {loaded.__module__}:{loaded.__qualname__}, "
                f"not this plugin: {declare}"]
    return []


def import_problems(module: str) -> list[str]:
    """Importing the plugin's module in a fresh interpreter: no heavy modules, within `IMPORT_SECONDS`."""
    code = ("import importlib, sys, time\nimport automl_tl.contract, automl_tl.errors\nstart = time.perf_counter()\n"
            "importlib.import_module(sys.argv[1])\nprint(time.perf_counter() - start)\n"
            f"print(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, timeout=300, env=env)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"importing {module} in a fresh interpreter fails: {last}"]
    seconds, heavy = (result.stdout.splitlines() + [""])[:2]
    if heavy.strip():
        return [f"importing {module} loads {heavy.strip()}: import them inside build_backbone / load_data, "
                "so listing plugins stays fast"]
    if float(seconds) > IMPORT_SECONDS:
        return [f"importing {module} takes {float(seconds):.1f} s (at most {IMPORT_SECONDS:g} s): "
                "move heavy imports and work into the methods that need them"]
    return []


def data_problems(data: LabelledData) -> list[str]:
    """What `check_data` leaves: enough classes, groups given for all examples or none, a description."""
    problems = []
    every = [e for part in (data.examples, data.test or [], data.validation or []) for e in part]
    if len({e.label for e in data.examples}) < 2:
        problems.append(f"load_data() gave {len(data.examples)} example(s) of {len({e.label for e in data.examples})} class(es): "
                        "a classifier needs 2 or more")
    grouped = sum(e.group is not None for e in every)
    if 0 < grouped < len(every):
        problems.append(f"{len(every) - grouped} of {len(every)} examples have no group while the others have one: "
                        f"give every example its {data.group_name} or none")
    if not isinstance(data.group_name, str) or not data.group_name:
        problems.append("LabelledData.group_name must name what a group is (speaker, author...)")
    if not isinstance(data.description, str) or not data.description.strip():
        problems.append("LabelledData.description must say in one line what was loaded and from where")
    return problems


def fingerprint_problems(builder: Any, name: str, options: Any, built: Any, item: Any) -> list[str]:
    """Each option that changes what ``transform`` gives must change a fingerprint, or caches go stale."""
    if options is None or not dataclasses.is_dataclass(options):
        return []
    reference = _transformed(built.preprocessor, item)
    problems = []
    for field in dataclasses.fields(options):
        for value in _alternatives(getattr(options, field.name)):
            try:
                changed = dataclasses.replace(options, **{field.name: value})
                other = builder.build_backbone(name, changed)
            except Exception:  # the plugin refuses this value: try the next one
                continue
            same_print = (other.fingerprint, other.preprocessor.fingerprint) == (built.fingerprint, built.preprocessor.fingerprint)
            if same_print and not _same(reference, _transformed(other.preprocessor, item)):
                problems.append(f"option {field.name} = {value!r} changes what transform() gives but neither fingerprint: "
                                "put it in preprocessor.fingerprint, or cached outputs of the old setting are reused")
            break
    return problems


def preprocessor_problems(plugin: ModalityPlugin, name: str, options: Any, built: Any, item: Any) -> list[str]:
    """`build_preprocessor` (what a bundle predicts with) must preprocess as the backbone's own preprocessor does."""
    alone = plugin.build_preprocessor(name, options)
    if getattr(alone, "fingerprint", None) != built.preprocessor.fingerprint:
        return [f"build_preprocessor() gives fingerprint {getattr(alone, 'fingerprint', None)!r}, the backbone's "
                f"preprocessor {built.preprocessor.fingerprint!r}: an exported bundle would refuse to load"]
    if not _same(_transformed(built.preprocessor, item), _transformed(alone, item)):
        return ["build_preprocessor() turns an example into other tensors than the backbone's preprocessor: "
                "a bundle would predict from inputs its network was not trained on"]
    return []


def _alternatives(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value * 2, value // 2] if value else [1]
    if isinstance(value, float):
        return [value * 2, value / 2] if value else [1.0]
    return []  # strings, paths, None: no value to guess that the plugin would accept


def _transformed(pre: Any, item: Any) -> dict[str, Any]:
    return pre.transform(pre.load(item), False)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
