"""A sampler seeded per trial, so that workers sharing a study never draw the same configuration.

A sampler seeded once per process replays the same random draws in every process started with
the same seed: three workers launched together would run the same first configurations three
times, and a resumed session would repeat the first one's. Seeding from (seed, trial number)
instead gives every trial its own draws, because the storage hands out each number once across
all workers, while one worker's search stays reproducible from the seed. The wrapped sampler
reads the study's history from the storage on every trial, so a fresh one per trial loses
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

SEED_STRIDE = 100_003
"""Seeds of one trial number under different ``--seed`` values stay apart (the training seeds use the same)."""


class PerTrialSeed(BaseSampler):
    """Delegates to ``make(seed)``, built afresh for each trial with a seed from its number."""

    def __init__(self, make: Callable[[int], BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._make((self._seed * SEED_STRIDE + trial.number) % 2**32)  # NumPy seeds are 32-bit
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
