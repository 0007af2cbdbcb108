"""Would AdaBN help a run's adapted model? Its BatchNorm statistics re-estimated on the target, then tested (issue #19).

    python bench/adabn.py RUN [--json FILE]

RUN is a finished run with a target domain and a labelled target test set (``--target``,
``--target-test``), whose final model has BatchNorm layers (a vision run). The run's target
examples, read again as the search read them (labels dropped), re-estimate every BatchNorm layer's
running mean and variance in the final model (Li et al. 2017: a cumulative average over the whole
target, no gradient); the target test set is then predicted as delivered, the model as it was saved
against the same model with the target's statistics. A `statistics` model also maps its head's
input onto the source's; after AdaBN that map's target side is stale, so it is shown both kept and
re-estimated on the same target examples. The same re-estimation on the source's own training
examples, tested on the source's test split, says whether the statistics the model was trained with
were the source's at all (a plugin may keep a backbone's pretrained statistics frozen).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory with a target and a target test set")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = adabn(args.run)
    for domain in ("target", "source"):
        for name, accuracy in result[f"{domain}_test_accuracy"].items():
            print(f"{domain} test, {name:<40} {accuracy:.4f}")
    if args.json:
        from automl_tl.search.inputs import environment

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": environment(), "run": str(args.run), **result}, indent=2) + "\n",
                             encoding="utf-8")


def adabn(run_dir: Path) -> dict[str, Any]:
    """Target test accuracy of the run's final model as saved, and with AdaBN (its map kept, or re-estimated)."""
    import torch
    from torch import nn

    from automl_tl.errors import UserError
    from automl_tl.model.predictor import load_model

    model = load_model(run_dir)
    target = model.run_data().target
    if target is None or not target.test or not target.unlabelled:
        raise UserError(f"{run_dir} has no target with a labelled target test set", hint="search with --target and --target-test")
    network, pre = model.network, model.preprocessor
    assert network is not None
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise UserError(f"{run_dir}'s model has no BatchNorm layer: AdaBN has nothing to re-estimate")
    classes = model.labels
    source = model.run_data().splits

    def head_inputs(examples: list[Any]) -> list[torch.Tensor]:
        """Per tail, its pooled features for ``examples`` (the network in its current mode)."""
        out: list[list[torch.Tensor]] = [[] for _ in network.tails]
        with torch.no_grad():
            for start in range(0, len(examples), 32):
                batch = pre.collate([pre.transform(pre.load(e.item), False) for e in examples[start:start + 32]])
                hidden, prefix_pooled, default_pooled = network.prefix_outputs(batch)
                for i, tail in enumerate(network.tails):
                    out[i].append(tail.features(hidden, prefix_pooled, default_pooled, batch if network.stem is None else None))
        return [torch.cat(parts) for parts in out]

    def accuracy(examples: list[Any], features: list[torch.Tensor], mapped: bool) -> float:
        truth = torch.tensor([classes.index(e.label) for e in examples])
        with torch.no_grad():
            probs = torch.stack([(tail.classify(f, True) if mapped else tail.head(f)).softmax(-1)
                                 for tail, f in zip(network.tails, features, strict=True)]).mean(0)
        return float((probs.argmax(-1) == truth).float().mean())

    def re_estimate(examples: list[Any]) -> None:
        """AdaBN: every BatchNorm layer's statistics, a cumulative average over ``examples``."""
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
            norm.train()
        head_inputs(examples)
        network.eval()

    trained = {name: value.clone() for name, value in network.state_dict().items()}
    scores = {"as saved": accuracy(target.test, head_inputs(target.test), True)}
    re_estimate(target.unlabelled)
    tested = head_inputs(target.test)
    scores["AdaBN"] = accuracy(target.test, tested, False)
    if all(tail.shift is not None for tail in network.tails):
        scores["AdaBN, the head's map kept"] = accuracy(target.test, tested, True)
        for tail, features in zip(network.tails, head_inputs(target.unlabelled), strict=True):
            tail.shift.target_mean.copy_(features.mean(0))
            tail.shift.target_var.copy_(features.var(0, unbiased=False))
        scores["AdaBN, the head's map re-estimated"] = accuracy(target.test, tested, True)
    network.load_state_dict(trained)
    on_source = {"as saved": accuracy(source.test, head_inputs(source.test), False)}
    re_estimate(source.train)
    on_source["statistics re-estimated on source train"] = accuracy(source.test, head_inputs(source.test), False)
    return {"batchnorm_layers": len(norms), "target_examples": len(target.unlabelled), "target_test_examples": len(target.test),
            "target_test_accuracy": scores, "source_test_accuracy": on_source}


if __name__ == "__main__":
    from bench.common import run_script

    run_script(main)
