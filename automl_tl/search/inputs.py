"""What a search is asked to do, the data it runs on, and what identifies its run.

`SearchRequest` is everything the command line resolved before anything loads; `load_data` finds,
reads and splits the data; `fingerprint` is what a resumed run must share with the one it resumes;
`environment` is what the report's reproducibility section shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from automl_tl import __version__
from automl_tl.config import RunConfig, plugin_options
from automl_tl.contract import DataRequest, LabelledData, ModalityPlugin
from automl_tl.datahome import existing_path, resolve_dataset
from automl_tl.domains import TargetSplits, make_target
from automl_tl.errors import DataError
from automl_tl.registry import check_data
from automl_tl.search.compute import resolve_bf16
from automl_tl.splits import Splits, make_splits


@dataclass
class SearchRequest:
    """Everything the command line resolved, before anything is loaded."""

    config: RunConfig
    data_home: Path
    run_dir: Path | None = None
    storage: str | None = None
    command: list[str] = field(default_factory=list)


@dataclass
class PreparedData:
    data: LabelledData
    splits: Splits
    name: str
    target: TargetSplits | None = None
    """The target domain's parts, for domain adaptation (`automl_tl.domains`)."""


def load_data(plugin: ModalityPlugin, request: SearchRequest) -> PreparedData:
    """Find the data (path, named dataset or the plugin's default), read it and split it; and the target's.

    The target is read first, so a plugin that remembers something of the data it read last (the
    text plugin's length sample) remembers the source, which the backbones are built for.
    """
    cfg = request.config.data
    if cfg.dataset is not None:
        path: Path | None = resolve_dataset(cfg.dataset, request.data_home)
        name = cfg.dataset
    elif cfg.path is not None:
        path = existing_path(cfg.path, request.data_home, "data path")
        name = path.stem or path.name
    else:
        path, name = None, "default"
    test_path = existing_path(cfg.test_path, request.data_home, "test path") if cfg.test_path else None
    target = [_read(plugin, request, p, what) for p, what in ((cfg.target_path, "target"), (cfg.target_test_path, "target test")) if p]
    data = _read(plugin, request, path, None, test_path)
    seed = request.config.search.seed
    splits = make_splits(data, cfg, seed)
    prepared = PreparedData(data, splits, name)
    if target:
        assert cfg.target_path is not None
        test = target[1] if len(target) > 1 else None
        prepared.target = make_target(target[0], test, splits.classes, cfg.target_labelled, seed, str(cfg.target_path))
    return prepared


def _read(plugin: ModalityPlugin, request: SearchRequest, path: Path | None, what: str | None, test_path: Path | None = None) -> LabelledData:
    """One ``plugin.load_data`` call; a target's data errors say it was the target."""
    if what is not None and path is not None:
        path = existing_path(path, request.data_home, f"{what} path")
    data_request = DataRequest(
        path=path,
        data_home=request.data_home,
        test_path=test_path,
        options=plugin_options(plugin, request.config.options),
        skip_bad_files=request.config.data.skip_bad_files,
        seed=request.config.search.seed,
    )
    try:
        return check_data(plugin, plugin.load_data(data_request), data_request)
    except DataError as exc:
        if what is None:
            raise
        raise DataError(f"{what} {path}: {exc.message}", hint=exc.hint) from None


def study_name(config: RunConfig, data_name: str) -> str:
    return config.study or f"{config.modality}-{data_name}".replace(" ", "-")


def fingerprint(config: RunConfig, splits: Splits, target: TargetSplits | None = None) -> str:
    """What a resumed run must share with the original: data, space, options, objective (not the budget).

    Without a target the adaptation settings are left out, so runs made before they existed resume.
    """
    exclude: dict[str, Any] = {"search": {"n_trials", "timeout", "refit", "cache", "precision", "heartbeat", "workers"}, "study": True}
    if target is None:
        exclude["search"] |= {"validator", "source_margin"}
        exclude["data"] = {"target_path", "target_test_path", "target_labelled"}
    settings = config.model_dump(mode="json", exclude=exclude)
    data = [[split, str(e.item), e.label, e.group] for split in ("train", "validation", "test") for e in getattr(splits, split)]
    for split, examples in (target.splits() if target else {}).items():
        data += [[split, str(e.item), e.label, e.group] for e in examples]
    blob = json.dumps({"settings": settings, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def environment() -> dict[str, Any]:
    return {
        "automl_tl": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "native_bf16": resolve_bf16("auto"),
    }
