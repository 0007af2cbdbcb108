"""What the validators of `automl_tl.vocabulary.adaptations.VALIDATORS` compute (higher is better for each).

Three read the model's predicted probabilities on the unlabelled target alone (`UNSUPERVISED`); DEV
and IWCV read where the model places source validation and target examples (the head's input) and
which source validation examples it gets right, so they can answer the question the others cannot:
is a target that looks like the source predicted as well as the source is?

Every epoch of a trial with a target records all of them, whichever one the search optimises, so
docs/adaptation.md can measure how well each tracks target accuracy across the trials of a search.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from automl_tl.search.adaptation import information_maximisation

if TYPE_CHECKING:
    from automl_tl.search.features import FeatureStore

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

DOMAIN_FOLDS = 2
"""The domain classifier scores each source validation example with a model fit on the other folds
(cross-fitting): a classifier that had seen an example would call it more source-like than it is."""
DOMAIN_L2 = 0.1
"""Ridge penalty of the domain classifier, on standardised features. Weak penalties let it separate
domains by memorised detail (fine-tuned features of sentences it trained on): its ratios then run to
extremes and DEV's estimate leaves [0, 1]."""
DOMAIN_PROBABILITY = (1e-3, 1 - 1e-3)
"""Domain probabilities are clipped here before they become density ratios (weights of at most ~1000)."""
SHIFT_MAX_EXAMPLES = 2000
"""The shift check's domain classifier reads at most this many examples of each domain (a fixed sample)."""
SHIFT_MIN_EXAMPLES = 10
"""With fewer examples of either domain the shift check decides nothing (the search adapts as asked)."""


def importance_weighted(source: Tensor, correct: Tensor, target: Tensor) -> dict[str, float]:
    """Source validation accuracy with each example weighted by how target-like it is: two estimates of target accuracy.

    The weights are the density ratio target/source at each example's features (`density_ratios`).
    ``dev``: deep embedded validation (You et al. 2019), the weighted error with the control variate
    that uses the weights' known mean of 1 to take out the variance they add. ``iwcv``: the
    self-normalised weighted accuracy (importance-weighted validation, Sugiyama et al. 2007), which
    stays in [0, 1] however badly the domain classifier is calibrated. A target that looks like the
    source weighs every example alike, so both are then the source validation accuracy: unlike the
    validators that read target predictions, confidence on the target earns nothing.
    """
    weights = density_ratios(source.float(), target.float())
    wrong = 1.0 - correct.float()
    weighted = weights * wrong
    spread = weights.var()
    eta = -float(((weighted - weighted.mean()) * (weights - weights.mean())).mean() / spread) if spread > 0 else 0.0
    return {"dev": 1.0 - float(weighted.mean() + eta * weights.mean() - eta),
            "iwcv": 1.0 - float(weighted.sum() / weights.sum())}


def density_ratios(source: Tensor, target: Tensor) -> Tensor:
    """p_target(x) / p_source(x) at each source example, from a ridge logistic domain classifier, cross-fitted."""
    chance = domain_probabilities(source, target)[: len(source)].clamp(*DOMAIN_PROBABILITY)
    return chance / (1 - chance) * (len(source) / len(target))


def domain_probabilities(source: Tensor, target: Tensor) -> Tensor:
    """Each example's probability of being a target example (source rows first), from a ridge logistic
    domain classifier on standardised features, each scored by the fit on the other folds."""
    both = torch.cat([source, target]).float()
    both = (both - both.mean(0)) / both.std(0).clamp(min=1e-6)
    domain = torch.cat([torch.zeros(len(source)), torch.ones(len(target))])
    fold = torch.cat([torch.randperm(len(source), generator=torch.Generator().manual_seed(0)),
                      torch.randperm(len(target), generator=torch.Generator().manual_seed(1))]) % DOMAIN_FOLDS
    chance = torch.empty(len(both))
    for k in range(DOMAIN_FOLDS):
        weight, bias = _logistic(both[fold != k], domain[fold != k])
        chance[fold == k] = torch.sigmoid(both[fold == k] @ weight + bias)
    return chance


def domain_auc(source: Tensor, target: Tensor) -> float:
    """How well the cross-fitted domain classifier tells target examples from source ones: the area
    under its ROC curve (0.5: not at all, 1: perfectly), ties counted half."""
    chance = domain_probabilities(source, target).double()
    _, inverse, counts = torch.unique(chance, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    ranks = (ends - (counts - 1) / 2)[inverse]  # ascending ranks from 1, tied values sharing their mean rank
    n_source, n_target = len(source), len(target)
    return float((ranks[n_source:].sum() - n_target * (n_target + 1) / 2) / (n_source * n_target))


def _logistic(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """A ridge logistic regression fit by L-BFGS: deterministic, and quick at these sizes."""
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=100, line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        optimizer.zero_grad()
        value = F.binary_cross_entropy_with_logits(x @ weight + bias, y) + DOMAIN_L2 * weight.square().sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)
    return weight.detach(), bias.detach()


def target_validator_scores(target_probs: Tensor, target_inputs: Tensor, source_inputs: Tensor, source_correct: Tensor) -> dict[str, float]:
    """Every validator but ``source`` for one model, from its outputs on the target and on source validation."""
    found = {name: fn(target_probs.float()) for name, fn in UNSUPERVISED.items()}
    found.update(importance_weighted(source_inputs, source_correct, target_inputs))
    return found


def domain_shift(store: FeatureStore) -> dict[str, Any]:
    """The shift check (`automl_tl.domains.NO_SHIFT_AUC`): `domain_auc` of the frozen backbone's own
    pooling, source training and validation examples against the unlabelled target, at most
    `SHIFT_MAX_EXAMPLES` of each (a fixed sample). The cache already holds these features."""
    parts = {"source": torch.cat([store.pooled(split)[1] for split in ("train", "validation")]), "target": store.pooled("target")[1]}
    for name, features in parts.items():
        if len(features) > SHIFT_MAX_EXAMPLES:
            parts[name] = features[torch.randperm(len(features), generator=torch.Generator().manual_seed(0))[:SHIFT_MAX_EXAMPLES]]
    sizes = {name: len(features) for name, features in parts.items()}
    if min(sizes.values()) < SHIFT_MIN_EXAMPLES:  # a fold without either domain would score nothing it can judge
        return {"auc": None, **sizes}
    return {"auc": round(domain_auc(parts["source"], parts["target"]), 4), **sizes}
