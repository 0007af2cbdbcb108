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
from automl_tl.errors import UserError
from automl_tl.registry import check_data
from automl_tl.search.train import resolve_bf16
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


def load_data(plugin: ModalityPlugin, request: SearchRequest) -> PreparedData:
    """Find the data (path, named dataset or the plugin's default), read it and split it."""
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
    data_request = DataRequest(
        path=path,
        data_home=request.data_home,
        test_path=test_path,
        options=plugin_options(plugin, request.config.options),
        skip_bad_files=cfg.skip_bad_files,
        seed=request.config.search.seed,
    )
    data = check_data(plugin, plugin.load_data(data_request), data_request)
    return PreparedData(data, make_splits(data, cfg, request.config.search.seed), name)


def study_name(config: RunConfig, data_name: str) -> str:
    return config.study or f"{config.modality}-{data_name}".replace(" ", "-")


def fingerprint(config: RunConfig, splits: Splits) -> str:
    """What a resumed run must share with the original: data, space, options, objective (not the budget)."""
    settings = config.model_dump(mode="json", exclude={"search": {"n_trials", "timeout", "refit", "cache", "precision", "heartbeat"}, "study": True})
    data = [[split, str(e.item), e.label, e.group] for split in ("train", "validation", "test") for e in getattr(splits, split)]
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
