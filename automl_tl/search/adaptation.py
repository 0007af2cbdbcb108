"""What each adaptation method computes while a trial trains (the methods are declared in
`automl_tl.vocabulary.adaptations`).

Every method works on the head's input: the pooled feature vector, whatever the strategy made it
from (the store's cached vectors, blocks trained on the cached prefix, or the whole network). So
one interface serves every strategy and input path: each training step gives the method the
source batch's features and a target batch's features and logits, and it returns a loss added to
the source's cross-entropy. Training code never asks which method it runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from automl_tl.vocabulary import TrialParams
from automl_tl.vocabulary.adaptations import ADAPTATIONS

STATISTICS_MOMENTUM = 0.05
"""How fast `DomainShift`'s running statistics follow the features as the tail trains."""
DANN_GAMMA = 10.0
"""Steepness of DANN's ramp 2 / (1 + exp(-gamma p)) - 1 over training progress p (Ganin et al. 2016)."""
SELF_TRAINING_WARMUP = 1 / 3
"""Share of training on the source alone before pseudo-labels count: early predictions are guesses."""


class DomainShift(nn.Module):
    """Per-domain feature statistics, and the map of target features onto the source's.

    A target feature x becomes (x - mean_t) / std_t * std_s + mean_s, dimension by dimension: the
    head, trained on source features, then reads target features centred and scaled as it was
    trained on. Source features pass unchanged. The statistics are buffers of the tail, so its
    saved weights carry them.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        for domain in ("source", "target"):
            self.register_buffer(f"{domain}_mean", torch.zeros(width))
            self.register_buffer(f"{domain}_var", torch.ones(width))
        self.register_buffer("observed", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def observe(self, source: Tensor, target: Tensor) -> None:
        rate = 1.0 if int(self.observed) == 0 else STATISTICS_MOMENTUM
        for domain, features in (("source", source), ("target", target)):
            for stat, value in (("mean", features.mean(0)), ("var", features.var(0, unbiased=False))):
                buffer = getattr(self, f"{domain}_{stat}")
                buffer.lerp_(value.to(buffer.dtype), rate)
        self.observed += 1

    def to_source(self, target: Tensor) -> Tensor:
        scale = ((self.source_var + 1e-5) / (self.target_var + 1e-5)).sqrt()
        return (target - self.target_mean) * scale + self.source_mean


class Adapter:
    """One method's training side: an extra loss from a step's source and target features."""

    def __init__(self, params: TrialParams, tail: nn.Module, width: int) -> None:
        self.weight = params.adaptation_weight or 1.0
        self.params = params
        self.tail = tail

    def parameters(self) -> list[nn.Parameter]:
        """Parameters the method trains beside the tail's (a domain classifier), at the head's rate."""
        return []

    def step(self, source: Tensor, target: Tensor, progress: float) -> Tensor:
        """One training step's extra loss, from the head's input for a source batch and a target batch."""
        return self.loss(source.float(), target.float(), self.tail.classify(target, True).float(), progress)

    def loss(self, source: Tensor, target: Tensor, target_logits: Tensor, progress: float) -> Tensor:
        """The extra loss; ``progress`` is the share of training done (0 at the first step, towards 1)."""
        raise NotImplementedError


class Statistics(Adapter):
    """No loss: the tail's `DomainShift` follows both domains' features as they change."""

    def loss(self, source: Tensor, target: Tensor, target_logits: Tensor, progress: float) -> Tensor:
        self.tail.shift.observe(source.detach(), target.detach())
        return source.new_zeros(())


def coral(source: Tensor, target: Tensor) -> Tensor:
    """Deep CORAL: the squared Frobenius distance of the two covariances, over 4 d^2."""
    d = source.shape[1]

    def covariance(x: Tensor) -> Tensor:
        centred = x - x.mean(0, keepdim=True)
        return centred.T @ centred / max(1, x.shape[0] - 1)

    return (covariance(source) - covariance(target)).pow(2).sum() / (4 * d * d)


class Coral(Adapter):
    def loss(self, source: Tensor, target: Tensor, target_logits: Tensor, progress: float) -> Tensor:
        return self.weight * coral(source, target)


class _Reverse(torch.autograd.Function):
    """Identity forward; the gradient multiplied by ``-coefficient`` backward (gradient reversal)."""

    @staticmethod
    def forward(ctx, features: Tensor, coefficient: float) -> Tensor:  # type: ignore[override]
        ctx.coefficient = coefficient
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return -ctx.coefficient * grad, None


class Dann(Adapter):
    """A domain classifier learns to tell source from target; the features learn to fool it."""

    def __init__(self, params: TrialParams, tail: nn.Module, width: int) -> None:
        super().__init__(params, tail, width)
        hidden = min(256, width)
        self.classifier = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def parameters(self) -> list[nn.Parameter]:
        return list(self.classifier.parameters())

    def loss(self, source: Tensor, target: Tensor, target_logits: Tensor, progress: float) -> Tensor:
        ramp = 2.0 / (1.0 + math.exp(-DANN_GAMMA * progress)) - 1.0
        features = _Reverse.apply(torch.cat([source, target]), self.weight * ramp)
        domain = torch.cat([source.new_zeros(len(source)), source.new_ones(len(target))])
        return F.binary_cross_entropy_with_logits(self.classifier(features).squeeze(-1), domain)


class SelfTraining(Adapter):
    """Confident target predictions as pseudo-labels, each class weighted alike, after a warm-up."""

    def loss(self, source: Tensor, target: Tensor, target_logits: Tensor, progress: float) -> Tensor:
        if progress < SELF_TRAINING_WARMUP:
            return source.new_zeros(())
        confidence, pseudo = target_logits.detach().softmax(-1).max(-1)
        keep = confidence >= (self.params.pseudo_threshold or 0.9)
        if not keep.any():
            return source.new_zeros(())
        pseudo = pseudo[keep]
        counts = torch.bincount(pseudo, minlength=target_logits.shape[1]).float()
        balance = (1.0 / counts.clamp(min=1))[pseudo]  # a class predicted often weighs no more than a rare one
        per_example = F.cross_entropy(target_logits[keep], pseudo, reduction="none")
        return self.weight * (balance * per_example).sum() / balance.sum()


def information_maximisation(logits: Tensor) -> Tensor:
    """Mean entropy of the predictions minus the entropy of their mean: low when each prediction is
    confident and the classes are used evenly (the diversity term stops a collapse onto one class)."""
    probs = logits.softmax(-1)
    entropy = -(probs * probs.clamp(min=1e-8).log()).sum(-1).mean()
    mean = probs.mean(0)
    diversity = -(mean * mean.clamp(min=1e-8).log()).sum()
    return entropy - diversity


class Entropy(Adapter):
    def loss(self, source: Tensor, target: Tensor, target_logits: Tensor, progress: float) -> Tensor:
        return self.weight * information_maximisation(target_logits)


ADAPTERS: dict[str, type[Adapter]] = {
    "statistics": Statistics, "coral": Coral, "dann": Dann, "self_training": SelfTraining, "entropy": Entropy,
}
"""Each method of `ADAPTATIONS` that trains on target batches, by name."""


def adapter_for(params: TrialParams, tail: nn.Module, width: int) -> Adapter | None:
    """The trial's method, or None when it adds nothing to training (source only)."""
    if not ADAPTATIONS[params.adaptation].needs_target_batches:
        return None
    return ADAPTERS[params.adaptation](params, tail, width)
