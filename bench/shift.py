"""Can the frozen features tell the target from the source? The shift check on the demo pairs (issue #19).

    python bench/shift.py yelp=recipes/text-amazon-to-yelp.toml \
        copy=recipes/text-amazon-to-yelp.toml:target_path=uci-sentiment/amazon_cells_labelled.txt \
        --json bench/results/shift.json

Each case is NAME=RECIPE, optionally followed by ``:key=value,...`` overriding the recipe's
``[data]`` keys (paths relative to the data home, as in a recipe). The recipe's data is read and
split as the search reads it (`automl_tl.search.inputs.load_data`), its first backbone's frozen
features computed by the search's `FeatureStore`, and the search's own check
(`automl_tl.search.validators.domain_shift`) prints the domain classifier's cross-fitted AUC beside
the threshold below which a search chooses on source validation (`automl_tl.domains.NO_SHIFT_AUC`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+", help="NAME=RECIPE[:key=value,...]")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from automl_tl.domains import NO_SHIFT_AUC
    from automl_tl.search.inputs import environment

    results = {}
    for case in args.cases:
        name, _, spec = case.partition("=")
        recipe, _, overrides = spec.partition(":")
        results[name] = measure(Path(recipe), dict(o.split("=", 1) for o in overrides.split(",") if o))
        found = results[name]
        if found["auc"] is None:
            print(f"{name:<10} too few examples to check ({found['source']} source / {found['target']} target)", flush=True)
            continue
        verdict = "shift: adapt" if found["auc"] >= NO_SHIFT_AUC else "no shift: choose on source validation"
        print(f"{name:<10} AUC {found['auc']:.4f}  ({found['source']} source / {found['target']} target, "
              f"{found['backbone']}, {found['seconds']:.1f} s)  {verdict}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": environment(), "threshold": NO_SHIFT_AUC, "cases": results}, indent=2) + "\n",
                             encoding="utf-8")


def measure(recipe: Path, data: dict[str, str]) -> dict[str, Any]:
    """The shift check's result for ``recipe`` with its ``[data]`` keys overridden by ``data``."""
    from automl_tl.config import plugin_options, read_recipe, resolve
    from automl_tl.errors import UserError
    from automl_tl.datahome import data_home
    from automl_tl.registry import backbone_builder, get_plugin
    from automl_tl.search.features import FeatureStore
    from automl_tl.search.inputs import SearchRequest, load_data
    from automl_tl.search.validators import domain_shift

    values = read_recipe(recipe)
    values.setdefault("data", {}).update(data)
    plugin = get_plugin(values["modality"])
    config = resolve(plugin, values, {}, str(recipe))
    prepared = load_data(plugin, SearchRequest(config=config, data_home=data_home()))
    if prepared.target is None:
        raise UserError(f"{recipe} names no target ([data] target_path)", hint="add one, or pass it as RECIPE:target_path=PATH")
    name = (config.space.get("backbone") or [plugin.default_backbone])
    name = name[0] if isinstance(name, list) else name
    backbone = backbone_builder(plugin, name).build_backbone(name, plugin_options(plugin, config.options))
    splits = prepared.splits
    store = FeatureStore(backbone, {"train": splits.train, "validation": splits.validation, **prepared.target.splits()}, splits.classes)
    start = time.perf_counter()
    found = domain_shift(store)
    return {**found, "backbone": name, "seconds": time.perf_counter() - start, "recipe": str(recipe), "data": data}


if __name__ == "__main__":
    from bench.common import run_script

    run_script(main)
