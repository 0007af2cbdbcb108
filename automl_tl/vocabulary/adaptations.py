"""Domain adaptation's words: the methods (`ADAPTATIONS`) and the validators that judge them (`VALIDATORS`).

Adaptation is the third kind of transfer, beside the strategies: labelled data from a *source*
domain, unlabelled data from the *target* domain the user cares about. A method is a record here
saying what it needs and which search dimensions tune it; the dimensions themselves are rows of
`automl_tl.vocabulary.DIMENSIONS`, active only when a target is given, so a search without one
samples exactly what it sampled before. What each method computes is `automl_tl.search.adaptation`.

A validator is how a trial is scored when the target has no labels: a number computed from the
model's predictions on the unlabelled target (and the labelled source), higher is better. What
each computes is `automl_tl.search.validators`. Torch-free, like the rest of the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Adaptation:
    """One way to adapt a model trained on the source to the target's unlabelled examples."""

    name: str
    label: str
    """Its name in leaderboard cells and the report's legends."""
    needs_target_batches: bool
    """Each training step also runs a batch of target examples through the tail."""
    dimensions: tuple[str, ...] = ()
    """The search dimensions that tune it (rows of `DIMENSIONS`, active only for this method)."""
    shifts_features: bool = False
    """The tail keeps each domain's feature statistics and maps target features onto the source's."""
    doc: str = ""


ADAPTATIONS: dict[str, Adaptation] = {a.name: a for a in (
    Adaptation("none", "source only", False,
               doc="Trained on the source alone: the baseline every method must beat (run first, like the linear probe)."),
    Adaptation("statistics", "statistics", True, shifts_features=True,
               doc="Re-centre and re-scale the head's input features on the target, so the target's features "
                   "have the source's mean and spread (AdaBN, Li et al. 2017, applied where the head reads)."),
    Adaptation("coral", "CORAL", True, ("adaptation_weight",),
               doc="Align the covariance of source and target features (Deep CORAL, Sun & Saenko 2016)."),
    Adaptation("dann", "DANN", True, ("adaptation_weight",),
               doc="A domain classifier on the head's input behind gradient reversal, its weight ramped up "
                   "over training as in Ganin et al. 2016."),
    Adaptation("self_training", "self-training", True, ("adaptation_weight", "pseudo_threshold"),
               doc="Confident target predictions become class-balanced pseudo-labels, from the second epoch on."),
    Adaptation("entropy", "information max.", True, ("adaptation_weight",),
               doc="Confident and diverse target predictions: entropy minimisation with a diversity term "
                   "(information maximisation, as in SHOT, Liang et al. 2020)."),
)}
"""How to adapt, in the order the report lists them; ``none`` first."""

SOURCE_ONLY = "none"


def uses(dimension: str, values: Any) -> bool:
    """Whether the trial's adaptation method is tuned by ``dimension``."""
    method = ADAPTATIONS.get(values.get("adaptation") or SOURCE_ONLY)
    return method is not None and dimension in method.dimensions


def describe_adaptation(params: Any) -> str:
    """``coral w0.3``, ``self-training w1 t0.80``: the method with the values that tune it."""
    method = ADAPTATIONS.get(params.get("adaptation") or SOURCE_ONLY)
    if method is None:
        return str(params.get("adaptation"))
    parts = [method.label]
    if params.get("adaptation_weight") is not None:
        parts.append(f"w{params['adaptation_weight']:.2g}")
    if params.get("pseudo_threshold") is not None:
        parts.append(f"t{params['pseudo_threshold']:.2f}")
    return " ".join(parts)


@dataclass(frozen=True)
class Validator:
    """A score of a trial computed without target labels; higher is better."""

    name: str
    label: str
    doc: str = ""


VALIDATORS: dict[str, Validator] = {v.name: v for v in (
    Validator("source", "source validation",
              doc="The objective on the source's validation split: blind to the shift, the reference the others are checked against."),
    Validator("im", "information max.",
              doc="Mean confidence and class diversity of target predictions: H(mean p) - mean H(p), over log C."),
    Validator("snd", "SND",
              doc="Soft neighbourhood density of the target's predictions (Saito et al. 2021): high when "
                  "target examples sit in tight clusters of the model's output space."),
    Validator("bnm", "BNM",
              doc="Nuclear norm of the target's prediction matrix over N (Cui et al. 2020): confident and diverse."),
    Validator("dev", "DEV",
              doc="Deep embedded validation (You et al. 2019): source validation accuracy with each example weighted "
                  "by how target-like it is (a domain classifier on the head's input), variance-controlled."),
    Validator("iwcv", "IWCV",
              doc="Importance-weighted validation: the same weights as DEV, self-normalised, so the estimate of "
                  "target accuracy stays in [0, 1] when the domain classifier is overconfident."),
)}
"""How a search with an unlabelled target scores its trials (`search.validator` chooses one)."""

TARGET_PREFIX = "target_"
"""Metrics on labelled target examples carry this prefix (``target_accuracy``), beside the source's."""
