"""How a study samples and prunes (`sampler_and_pruner`): TPE seeded per trial, so that workers sharing a
study never draw the same configuration, and the configured pruner.

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
from optuna.pruners import BasePruner, HyperbandPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from automl_tl.config import SearchConfig, rung_steps

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


def sampler_and_pruner(search: SearchConfig, max_epochs: int) -> tuple[BaseSampler, BasePruner]:
    """The study's sampler (multivariate TPE, per-trial seeds) and pruner, whose steps count rungs
    (`automl_tl.config.rung_steps`) up to ``max_epochs`` epochs."""
    n_trials = search.n_trials or 50
    sampler = PerTrialSeed(
        lambda seed: optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(3, min(10, n_trials // 3)),
            multivariate=True,
            group=True,
            constant_liar=True,  # workers sharing the study steer away from each other's running trials
        ),
        search.seed,
    )
    pruner: BasePruner
    if search.pruner == "hyperband":
        pruner = HyperbandPruner(min_resource=1, max_resource=max_epochs * rung_steps(search.first_rung), reduction_factor=3)
    elif search.pruner == "halving":
        pruner = SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    else:
        pruner = NopPruner()
    return sampler, pruner
