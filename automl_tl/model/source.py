"""Where a trained model comes from: a run directory or an exported bundle, read and checked.

A run directory's final model is the tested configuration's (``final/weights.pt``: the refit's tail
weights, or a list of fold models' to average), else the best trial's own weights (``trials/N/weights.pt``)
or a better trial's epoch while it trains (``trials/N/checkpoint.pt``); the frozen part is
the plugin's backbone, rebuilt from the options recorded when the search built it
(``backbones.json``). A bundle holds the whole network (``model.onnx`` or ``model.pt``) and says
how to preprocess for it (``preprocessing.json``). Both come down to one `ModelSource`.

No torch here: the leaderboard imports `final_model_line` and must stay quick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from automl_tl import __version__
from automl_tl.config import options_record, plugin_options
from automl_tl.errors import UserError
from automl_tl.registry import discover
from automl_tl.rundir import RunDir, read_json, write_json

if TYPE_CHECKING:
    from automl_tl.backbone import Backbone, Preprocessor
    from automl_tl.contract import ModalityPlugin

BUNDLE_FORMAT = 1
"""Bumped when a bundle's files change incompatibly."""
BUNDLE_FILES = ("preprocessing.json", "labels.json", "metrics.json", "README.md")
"""Every bundle has these, plus its network file (`NETWORK_FILES`)."""
NETWORK_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}


@dataclass
class ModelSource:
    """Everything needed to rebuild a model for prediction, from a run directory or a bundle."""

    root: Path
    kind: str
    """``run`` (tail weights; the backbone comes from the plugin) or ``onnx`` / ``torchscript`` (a bundle)."""
    modality: str
    backbone: str
    options: dict[str, Any]
    classes: list[str]
    network: Path
    """The run's tail weights, or the bundle's network file."""
    params: dict[str, Any] = field(default_factory=dict)
    """The configuration that was trained (`TrialParams` as a dict); a run only."""
    plugin_version: str | None = None
    preprocessor: str | None = None
    """The preprocessor's fingerprint when the model was made; None for runs older than the record."""
    card: dict[str, Any] = field(default_factory=dict)
    """Test scores, confusion matrix, the split and the data: what `Model.card` shows."""
    config: dict[str, Any] = field(default_factory=dict)
    """The run's saved configuration (``config.json``); empty for a bundle."""
    inputs: list[str] = field(default_factory=list)
    """A bundle's network inputs: the collated batch's keys, in the network's argument order."""


def read_source(path: Path) -> ModelSource:
    """The model at ``path``, a run directory or a bundle; a `UserError` saying what is missing or wrong."""
    if not path.is_dir():
        raise UserError(f"{path} is not a run directory or a model bundle (no such folder)",
                        hint="pass the folder `automl-tl search` or `automl-tl export` wrote")
    if (path / "preprocessing.json").exists():
        return _read_bundle(path)
    if (path / "config.json").exists():
        return _read_run(RunDir(path))
    raise UserError(f"{path} is neither a run directory (no config.json) nor a model bundle (no preprocessing.json)",
                    hint="pass the folder `automl-tl search` or `automl-tl export` wrote")


def check_plugin(source: ModelSource) -> ModalityPlugin:
    """The plugin that made the model, at the version that made it; a `UserError` otherwise.

    Preprocessing stays the plugin's Python code, so another version may turn the same file into
    other tensors, and the network would silently see inputs it was never trained on.
    """
    entry = discover().get(source.modality)
    if entry is None:
        raise UserError(f"the model at {source.root} needs the {source.modality!r} modality plugin, which is not installed",
                        hint=f"install the plugin that provides {source.modality!r} (see `automl-tl plugins list`)")
    if source.plugin_version is not None and entry.version != source.plugin_version:
        raise UserError(
            f"the model at {source.root} was made with {entry.distribution} {source.plugin_version}, "
            f"but {entry.version} is installed: its preprocessing may differ",
            hint=f"pip install '{entry.distribution}=={source.plugin_version}', or export the run again with this version",
        )
    return entry.load()


def check_preprocessor(source: ModelSource, preprocessor: Preprocessor) -> None:
    """The rebuilt preprocessor must be the one the network was trained behind."""
    found = preprocessor.fingerprint
    if source.preprocessor is not None and found != source.preprocessor:
        raise UserError(f"the {source.modality} plugin now preprocesses {source.backbone!r} differently from when "
                        f"the model at {source.root} was made ({found} instead of {source.preprocessor})",
                        hint="install the plugin version and backbone files the model was made with")


def record_backbones(run: RunDir, plugin: ModalityPlugin, backbones: dict[str, Backbone], options: dict[str, Any]) -> None:
    """Write what rebuilds each searched backbone later without the data (``backbones.json``)."""
    entry = discover().get(plugin.name)
    write_json(run.backbones_path, {
        name: {"options": options_record(plugin.inference_options(backbone, plugin_options(plugin, options))),
               "preprocessor": backbone.preprocessor.fingerprint,
               "plugin_version": entry.version if entry is not None else None}
        for name, backbone in backbones.items()
    })


def final_training(test: dict[str, Any]) -> str:
    """How a run's tested model was trained, in the words the leaderboard, the report and the model card use."""
    members = test.get("members", 1)
    if isinstance(members, int) and members > 1:
        if test.get("ensemble") == "refit and own":
            return "refit on train+validation, averaged with the trial's own model (trained on train)"
        return f"{members} fold models averaged, each trained on train+validation less one fold"
    return "refit on train+validation" if test.get("refit") else "trained on train"


class FinalModel(NamedTuple):
    """A run's model to use now: whose configuration, which weights, how they were trained, and the record
    that holds the configuration (``params``)."""

    trial: int
    weights: Path
    how: str
    record: Path


def final_model(run: RunDir) -> FinalModel | None:
    """A run's final model: the tested configuration's (refit, or fold models averaged); before there is
    one, the best so far on validation of the completed trials' own weights and the checkpoints of trials
    still training (or stopped without an outcome), so a search stopped at any moment leaves its best."""
    test = _json_or_none(run.test_path)
    if isinstance(test, dict) and isinstance(test.get("trial"), int):
        weights = run.final_weights_path if test.get("refit") else run.weights_path(test["trial"])
        if weights.exists():
            return FinalModel(test["trial"], weights, final_training(test), run.trial_dir(test["trial"]) / "record.json")
    best: tuple[float, FinalModel] | None = None
    for record_path in sorted((run.root / "trials").glob("*/record.json")):  # by number: of equal scores, the earliest
        record = _json_or_none(record_path)
        if (isinstance(record, dict) and record.get("state") == "complete" and isinstance(record.get("score"), int | float)
                and run.weights_path(record["trial"]).exists() and (best is None or record["score"] > best[0])):
            trial = record["trial"]
            best = (record["score"], FinalModel(trial, run.weights_path(trial), "the best trial's own weights, trained on train",
                                                record_path))
    for checkpoint in run.checkpoints():
        if best is None or checkpoint["score"] > best[0]:
            how = f"its epoch {checkpoint['epoch']} of {checkpoint['epochs']}, the trial unfinished, trained on train"
            best = (checkpoint["score"], FinalModel(checkpoint["trial"], checkpoint["weights"], how,
                                                    run.checkpoint_paths(checkpoint["trial"])[1]))
    return best[1] if best else None


def final_model_line(run_dir: Path) -> str | None:
    """One line for the leaderboard and the report: where the final model is and how to use it."""
    found = final_model(RunDir(run_dir))
    if found is None:
        return None
    trial, weights, how, _ = found
    return (f"Final model: {weights} (trial {trial}'s configuration, {how}). Predict with `automl-tl predict {run_dir} FILE...`; "
            f"bundle it with `automl-tl export {run_dir} --out DIR`.")


def _read_run(run: RunDir) -> ModelSource:
    saved = run.load_config()
    assert saved is not None
    found = final_model(run)
    if found is None:
        raise UserError(f"run {run.root} has no trained model yet (no final/weights.pt, no trial's weights or checkpoint)",
                        hint="let `automl-tl search` finish at least one trial")
    trial, weights, _, described = found
    record = _json_or_none(described)
    params = record.get("params") if isinstance(record, dict) else None
    if not params:
        raise UserError(f"run {run.root}: trial {trial}'s record is missing or damaged", hint="run the search again to resume it")
    data = saved.get("data", {})
    backbones = _json_or_none(run.backbones_path) or {}
    built = backbones.get(params["backbone"], {}) if isinstance(backbones, dict) else {}
    return ModelSource(
        root=run.root, kind="run", modality=saved["modality"], backbone=params["backbone"],
        options=built.get("options", saved.get("config", {}).get("options", {})), classes=list(data.get("classes", [])),
        network=weights, params=params, plugin_version=built.get("plugin_version"), preprocessor=built.get("preprocessor"),
        card=run_card(saved, _json_or_none(run.test_path)), config=saved,
    )


def run_card(saved: dict[str, Any], test: Any) -> dict[str, Any]:
    """What a model card says about a run's final model: test scores, the data and how test was held out."""
    data = saved.get("data", {})
    return {
        "test": test if isinstance(test, dict) else None,
        "objective": saved.get("objective"),
        "data": {key: data.get(key) for key in ("name", "description", "split", "sizes", "group_name")},
        "dataset": saved.get("config", {}).get("data", {}).get("dataset") or data.get("name"),
        "classes": data.get("classes", []),
    }


def _read_bundle(root: Path) -> ModelSource:
    missing = [name for name in BUNDLE_FILES if not (root / name).is_file()]
    if missing:
        raise UserError(f"bundle {root} is incomplete: {', '.join(missing)} missing", hint="export the run again")
    pre = _bundle_json(root, "preprocessing.json", dict)
    labels = _bundle_json(root, "labels.json", list)
    card = _bundle_json(root, "metrics.json", dict)
    if pre.get("bundle_format") != BUNDLE_FORMAT:
        raise UserError(f"bundle {root} has format {pre.get('bundle_format')!r}; automl-tl {__version__} reads format {BUNDLE_FORMAT}",
                        hint="export the run again with this version")
    kind = pre.get("format")
    if kind not in NETWORK_FILES:
        raise UserError(f"bundle {root}: preprocessing.json names an unknown network format {kind!r}", hint="export the run again")
    network = root / NETWORK_FILES[kind]
    if not network.is_file():
        raise UserError(f"bundle {root} is incomplete: {network.name} missing", hint="export the run again")
    try:
        return ModelSource(root=root, kind=kind, modality=str(pre["plugin"]), backbone=str(pre["backbone"]),
                           options=dict(pre["options"]), classes=[str(label) for label in labels], network=network,
                           plugin_version=pre.get("plugin_version"), preprocessor=pre.get("preprocessor"), card=card,
                           inputs=[str(name) for name in pre["inputs"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"bundle {root}: preprocessing.json lacks {exc}", hint="export the run again") from None


def _bundle_json(root: Path, name: str, kind: type) -> Any:
    try:
        value = read_json(root / name)
    except (OSError, ValueError) as exc:
        raise UserError(f"bundle {root}: {name} is unreadable ({exc})", hint="export the run again") from None
    if not isinstance(value, kind):
        raise UserError(f"bundle {root}: {name} holds {type(value).__name__}, not a {kind.__name__}", hint="export the run again")
    return value


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
