"""What the validators of `automl_tl.vocabulary.adaptations.VALIDATORS` compute from a model's
predicted probabilities on the unlabelled target (higher is better for each).

Every epoch of a trial with a target records all of them, whichever one the search optimises, so
docs/adaptation.md can measure how well each tracks target accuracy across the trials of a search.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from automl_tl.search.adaptation import information_maximisation

SND_TEMPERATURE = 0.05
"""Softmax temperature of SND's neighbourhood similarities (Saito et al. 2021's value)."""
SND_MAX_EXAMPLES = 2000
"""SND compares every pair of target examples; beyond this many, a fixed sample of them."""


def im(probs: Tensor) -> float:
    """Information maximisation, H(mean p) - mean H(p), divided by log C so it lies in [-1, 1]."""
    logits = probs.clamp(min=1e-8).log()
    return float(-information_maximisation(logits)) / math.log(probs.shape[1])


def snd(probs: Tensor) -> float:
    """Soft neighbourhood density: the mean entropy of each example's softmax over its similarities
    to the others (cosine of the probability vectors, temperature `SND_TEMPERATURE`)."""
    if len(probs) > SND_MAX_EXAMPLES:
        probs = probs[torch.randperm(len(probs), generator=torch.Generator().manual_seed(0))[:SND_MAX_EXAMPLES]]
    unit = torch.nn.functional.normalize(probs, dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-math.inf)
    neighbours = (similarity / SND_TEMPERATURE).softmax(dim=1)
    return float(-(neighbours * neighbours.clamp(min=1e-12).log()).sum(1).mean())


def bnm(probs: Tensor) -> float:
    """Batch nuclear-norm: the sum of the prediction matrix's singular values over sqrt(N * min(N, C))."""
    n, c = probs.shape
    return float(torch.linalg.matrix_norm(probs, ord="nuc")) / math.sqrt(n * min(n, c))


UNSUPERVISED = {"im": im, "snd": snd, "bnm": bnm}
"""The validators computed from target predictions alone (``source`` is the source validation score)."""


def unsupervised_scores(probs: Tensor) -> dict[str, float]:
    return {name: fn(probs.float()) for name, fn in UNSUPERVISED.items()}
