"""The text plugin through the core: the CLI end to end, and every transfer strategy's input path."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from automl_tl.config import DataConfig
from automl_tl.contract import DataRequest
from automl_tl.splits import make_splits
from automl_tl_text import TextPlugin
from automl_tl_text.options import TextOptions


def test_search_end_to_end_through_the_cli(run_cli, spam_csv: Path, tiny_bert: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('modality = "text"\n[space]\nepochs = [1, 2]\nbatch_size = [16]\n', encoding="utf-8")
    code, output = run_cli("search", "--modality", "text", "--data", str(spam_csv), "--backbone", str(tiny_bert),
                           "--n-trials", "3", "--recipe", str(recipe), "--study", "tiny")
    assert code == 0, output
    run = tmp_path / "runs" / "tiny"
    records = sorted(run.rglob("record.json"))
    assert len(records) == 3
    assert all(json.loads(r.read_text())["state"] in ("complete", "pruned") for r in records)
    assert "60 texts, 2 labels" in output


@pytest.mark.parametrize(
    ("strategy", "freeze_depth", "pooling", "augment"),
    [("feature_extraction", 2, "weighted", False), ("partial", 1, "default", False),
     ("full", 0, "mean", True), ("lp_ft", 0, "default", False)],
)
def test_every_strategy_trains(strategy: str, freeze_depth: int, pooling: str, augment: bool,
                               tiny_distilbert: Path, tmp_path: Path, make_message) -> None:
    from automl_tl.search.features import FeatureStore
    from automl_tl.search.space import TrialParams
    from automl_tl.search.train import train_trial

    rng = random.Random(1)
    rows = ["label\ttext"] + [f"{label}\t{make_message(rng, label, 2, 14)}" for label in ("ham", "spam") for _ in range(20)]
    path = tmp_path / "d.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    plugin = TextPlugin()
    data = plugin.load_data(DataRequest(path=path, data_home=tmp_path))
    splits = make_splits(data, DataConfig(), seed=0)
    backbone = plugin.build_backbone(str(tiny_distilbert), TextOptions())
    store = FeatureStore(backbone, {"train": splits.train, "validation": splits.validation, "test": splits.test}, splits.classes)
    params = TrialParams(backbone="tiny", strategy=strategy, freeze_depth=freeze_depth, head_lr=1e-2, weight_decay=1e-4,
                         epochs=2, batch_size=8, head="linear", pooling=pooling, augment=augment,
                         backbone_lr=None if strategy == "feature_extraction" else 1e-4)
    outcome = train_trial(params, store, len(splits.classes), "macro_f1", seed=0)
    assert 0.0 <= outcome.scores["macro_f1"] <= 1.0 and len(outcome.history) == 2
