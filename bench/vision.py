"""Vision baselines beside the default automl-tl search on cifar10-small (issue #5), on the search's own splits.

What does the search add over cheaper routes, and what does pretraining add at all? Against it:
logistic regression on raw pixels (the floor), on frozen EfficientNet-Lite0 features (transfer
without training the network), and the same network trained from random weights for as long as
the search ran. Every method is scored once on the same test split.

    .venv/bin/python bench/vision.py [--limit N] [--json out.json] [--scratch-seconds S]
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from automl_tl.backbone import Backbone  # noqa: E402
from automl_tl.contract import Example  # noqa: E402
from automl_tl_vision import efficientnet_lite  # noqa: E402
from automl_tl_vision.backbones import EFFICIENTNET, build_efficientnet  # noqa: E402
from automl_tl_vision.preprocess import ImagePreprocessor  # noqa: E402

from bench.common import (  # noqa: E402
    RECIPES,
    Bench,
    Result,
    baseline_parser,
    check_baseline_args,
    finish,
    fit_and_test,
    fit_examples,
    frozen_pooled,
    label_array,
    load_bench,
    logistic_probe,
    maybe_search,
    run_script,
    scored,
)

RECIPE = RECIPES / "vision-cifar10-small.toml"
PIXEL_SIDE = 32
"""Raw-pixel baseline input: CIFAR's native size (larger images are centre-cropped and shrunk to it)."""
SCRATCH_BATCH = 16
"""Big enough for BatchNorm statistics, small enough for the fast channels-last CPU kernels."""
SCRATCH_LR = 2e-3
SCRATCH_WEIGHT_DECAY = 0.05
WARMUP = 0.05
"""Fraction of the time budget spent warming the learning rate up (AdamW from random weights diverges without)."""
EVAL_BATCH = 64


class ScratchNet(nn.Module):
    """A backbone's stem, blocks and own pooling, then a linear head: the whole network trains."""

    def __init__(self, backbone: Backbone, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.width, n_classes)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        hidden = self.backbone.stem(batch)
        for block in self.backbone.blocks:
            hidden = block(hidden)
        return self.head(self.backbone.pool(hidden))


def pixel_baseline(bench: Bench) -> Result:
    """Logistic regression on standardised 32×32 RGB pixels: what a linear model gets with no learned features."""
    start = time.perf_counter()
    fit = fit_examples(bench.splits)
    predicted = logistic_probe(pixel_rows(fit), label_array(fit), pixel_rows(bench.splits.test))
    return scored(f"LR on raw pixels ({PIXEL_SIDE} px)", bench.splits.test, predicted, time.perf_counter() - start)


def pixel_rows(examples: Sequence[Example]) -> np.ndarray:
    """(N, 3·32·32) pixels in [0, 1], read and centre-cropped by the plugin's own image code."""
    pixels = ImagePreprocessor(PIXEL_SIDE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return np.stack([pixels.transform(pixels.load(e.item), False)["pixel_values"].flatten().numpy() for e in examples])


def pretrained_probe(bench: Bench, resolution: int) -> Result:
    """Logistic regression on frozen pretrained EfficientNet-Lite0's own pooling (1280 wide), as the plugin builds it."""
    start = time.perf_counter()
    pooled = frozen_pooled(bench.plugin.build_backbone(EFFICIENTNET, bench.options), bench.splits)
    fit_x, test_x = fit_and_test({split: default for split, (_, default) in pooled.items()})
    predicted = logistic_probe(fit_x, label_array(fit_examples(bench.splits)), test_x)
    return scored(f"LR on frozen {EFFICIENTNET} ({resolution} px)", bench.splits.test, predicted, time.perf_counter() - start,
                  resolution=resolution)


def scratch_baseline(bench: Bench, resolution: int, budget_s: float) -> Result:
    """EfficientNet-Lite0 from random weights, trained on train + validation for ``budget_s`` seconds.

    BatchNorm in training mode, AdamW with warm-up and a cosine decay over the time budget (so the
    run ends annealed whatever the speed of the machine), random crops and flips (the plugin's
    augmentation). Only the training steps count against the budget; reading images and scoring
    the test split add to the wall time, which is reported whole.
    """
    start = time.perf_counter()
    torch.manual_seed(bench.config.search.seed)
    backbone = build_efficientnet(resolution, pretrained=False)
    model = ScratchNet(backbone, len(bench.splits.classes))
    preprocessor = backbone.preprocessor
    index = {label: i for i, label in enumerate(bench.splits.classes)}
    fit = fit_examples(bench.splits)
    raws = [preprocessor.load(e.item) for e in fit]
    targets = torch.tensor([index[e.label] for e in fit])
    steps = train_for(model, preprocessor, raws, targets, budget_s)
    predicted = predict(model, preprocessor, bench)
    return scored(f"{EFFICIENTNET} from scratch ({resolution} px)", bench.splits.test, predicted,
                  time.perf_counter() - start, resolution=resolution, budget_s=budget_s, steps=steps,
                  epochs=steps * SCRATCH_BATCH / len(raws), batch_size=SCRATCH_BATCH)


def train_for(model: ScratchNet, preprocessor: ImagePreprocessor, raws: list[Tensor], targets: Tensor, budget_s: float) -> int:
    """Augmented AdamW steps in training mode until ``budget_s`` seconds have passed; returns the step count."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=SCRATCH_LR, weight_decay=SCRATCH_WEIGHT_DECAY)
    model.train()
    steps = 0
    start = time.perf_counter()
    for batch in endless_batches(len(raws), SCRATCH_BATCH):
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            break
        for group in optimiser.param_groups:
            group["lr"] = SCRATCH_LR * learning_rate_factor(elapsed / budget_s)
        inputs = preprocessor.collate([preprocessor.transform(raws[i], True) for i in batch])
        loss = F.cross_entropy(model(inputs), targets[batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        steps += 1
    return steps


def endless_batches(n: int, batch_size: int) -> Iterator[list[int]]:
    """Reshuffled epochs of index batches, dropping each epoch's ragged tail (BatchNorm dislikes tiny batches)."""
    size = min(batch_size, n)
    while True:
        order = torch.randperm(n).tolist()
        for i in range(0, n - size + 1, size):
            yield order[i : i + size]


def learning_rate_factor(progress: float) -> float:
    """Linear warm-up over the first `WARMUP` of the budget, then cosine decay to zero at its end."""
    if progress < WARMUP:
        return progress / WARMUP
    return 0.5 * (1.0 + math.cos(math.pi * (progress - WARMUP) / (1.0 - WARMUP)))


@torch.inference_mode()
def predict(model: ScratchNet, preprocessor: ImagePreprocessor, bench: Bench) -> list[str]:
    """Test predictions in eval mode (BatchNorm on its running statistics), un-augmented."""
    model.eval()
    test = bench.splits.test
    predicted: list[str] = []
    for i in range(0, len(test), EVAL_BATCH):
        batch = [preprocessor.transform(preprocessor.load(e.item), False) for e in test[i : i + EVAL_BATCH]]
        predicted += [bench.splits.classes[j] for j in model(preprocessor.collate(batch)).argmax(1).tolist()]
    return predicted


def main(argv: list[str] | None = None) -> None:
    parser = baseline_parser(__doc__.splitlines()[0])
    parser.add_argument("--scratch-seconds", type=float, metavar="S",
                        help="training budget of the from-scratch network (default: the search's wall time)")
    parser.add_argument("--scratch-resolution", type=int, metavar="PX",
                        help="its input side (default: the recipe's resolution, the one the search uses)")
    args = parser.parse_args(argv)
    check_baseline_args(parser, args)
    if args.skip_search and args.scratch_seconds is None:
        parser.error("without the search there is no wall time to match: give --scratch-seconds")
    search = maybe_search(args, RECIPE)
    bench = load_bench(RECIPE, args.limit)
    resolution = bench.options.resolution or efficientnet_lite.RESOLUTION
    print(f"resolution: {resolution} px (the recipe's [options] resolution, which the search uses)")
    budget = args.scratch_seconds if args.scratch_seconds is not None else search_wall_s(search)
    baselines = [
        pixel_baseline(bench),
        pretrained_probe(bench, resolution),
        scratch_baseline(bench, args.scratch_resolution or resolution, budget),
    ]
    finish(args, "vision: cifar10-small", bench, baselines, search, resolution=resolution, scratch_budget_s=budget)


def search_wall_s(search: tuple[Result | None, object]) -> float:
    """The search's wall time: the from-scratch network gets as long as the search took, end to end."""
    row, _ = search
    if row is None:
        raise ValueError("no search ran: the from-scratch budget needs --scratch-seconds")
    return row.wall_s


if __name__ == "__main__":
    run_script(main)
