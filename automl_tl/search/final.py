"""The search's one look at the test split: choose a configuration, refit it, test it once.

The choice is `automl_tl.search.selection`'s (the simplest configuration within validation noise
of the best), made again on cross-validation folds when the validation split cannot settle it
(`automl_tl.search.crossval`). A run that ranks trials on a target domain
feeds `automl_tl.domains.adapted_choice`'s trials to the same step instead: its validator (or
labelled target examples), under the source guard. With ``refit`` (the default) it is retrained
on train and validation together, for the epochs `automl_tl.search.epochs.refit_epochs` says: the final
model then learns from every labelled example outside the test split, which matters most when
groups are few (a speaker held out for validation is a speaker the model never heard). When the
choice was made on folds, the chosen configuration's fold models are the final model instead,
their probabilities averaged: together they too learnt from every labelled example, and an average
of several models moves far less with the training seed than one refit does (docs/results.md),
at no training beyond the folds'. A refit is averaged the same way with the trial's own weights
where the run kept them: a second model for no training at all, and one whose epoch validation chose
where the refit's could not be checked. The test score is stored with its bootstrap
interval, so a reader can see what difference the test split can resolve. A labelled target test
set is evaluated once too, beside it. Both are scored as `automl-tl predict` and an export run the
model (`DELIVERED`), so predicting the test split again gives test.json's numbers exactly.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from torch import Tensor

from automl_tl.backbone import Backbone
from automl_tl.config import RunConfig
from automl_tl.domains import adapted_choice, selection
from automl_tl.progress import Count, counted
from automl_tl.rundir import RunDir, atomic_write, write_json
from automl_tl.search import crossval
from automl_tl.search.compute import Compute
from automl_tl.search.epochs import refit_epochs
from automl_tl.search.features import FeatureStore
from automl_tl.search.metrics import detailed, interval, score_of
from automl_tl.search.model import Tail
from automl_tl.search.selection import Choice, at_ceiling, choose
from automl_tl.search.train import input_mode, probabilities, train_trial
from automl_tl.search.workers import POLL_SECONDS, FoldShare, Helpers, Job
from automl_tl.splits import Splits
from automl_tl.trials import seconds
from automl_tl.vocabulary import TrialParams

State = dict[str, Tensor]
"""One tail's weights."""

DELIVERED = Compute(cached=False, bf16=False)
"""The test's arithmetic: fp32 from the examples themselves, as the exported network runs. The
search's fp16 activation cache and bf16 autocast are close enough to rank trials, but they flip
a borderline example now and then, and a test score must be the delivered model's."""


@dataclass
class FinalContext:
    """What the final evaluation reuses from the search: its feature stores, backbones, splits and settings."""

    stores: dict[str, FeatureStore]
    backbones: dict[str, Backbone]
    splits: Splits
    config: RunConfig
    compute: Compute
    console: Console
    helpers: Helpers | None = None
    """The search's helper processes, which train fold models beside it while they run (`automl_tl.search.workers`)."""


def evaluate_test(study: optuna.Study, run: RunDir, ctx: FinalContext) -> None:
    """Choose, refit and test once; a study that holds this choice's test result already is left as it is.

    A resumed or second worker's call whose trials considered (within noise of the best, and any others
    cross-validated) are those already considered returns at once: neither the choice nor its
    cross-validation is made again.
    """
    splits, settings = ctx.splits, ctx.config.search
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    on_target = selection(ctx.config) != (settings.objective, None)  # a validator or labelled target examples rank the trials
    index = {c: i for i, c in enumerate(splits.classes)}
    labels = np.array([index[e.label] for e in splits.validation])
    choice = adapted_choice(completed, ctx.config) if on_target else choose(completed, labels, len(splits.classes), settings.objective)
    if choice is None:
        return
    doubt = None if on_target else crossval.why(choice.best, choice.trial, splits.validation, splits.train + splits.validation)
    trials = crossval.candidates(choice, doubt) if doubt is not None else []  # source folds cannot measure a target
    existing = study.user_attrs.get("test") or {}
    considered = [t.number for t in choice.within]
    considered += [t.number for t in trials if t.number not in considered]
    if existing.get("considered") == considered:  # the choice depends on these alone: it was made and tested already
        return
    folds: dict[str, Any] | None = None
    fold_models: dict[int, list[State]] = {}
    if len(trials) > 1:
        choice, folds, fold_models = _cross_validated(trials, run, ctx, doubt)
    if ctx.helpers is not None:
        ctx.helpers.finish()  # the rest is one model's: every thread here
    chosen = choice.trial
    why = {"best_trial": choice.best.number, "chosen": choice.reason, "considered": considered,
           **({"cross_validation": folds} if folds else {})}
    if existing.get("trial") == chosen.number:  # the same configuration, already tested: say why it is still the one
        _deliver(study, run, {**{k: v for k, v in existing.items() if k != "cross_validation"}, **why})
        return
    ctx.console.print(f"[bold]chosen[/]: {choice.reason}")
    if doubt is None and not on_target and all(e.group is None for e in splits.validation) and at_ceiling(choice, labels):
        ctx.console.print(f"[yellow]note[/]: validation cannot rank these: the best trial misses at most one of its "
                          f"{len(labels)} examples and {len(choice.within) - 1} other(s) tie with it. If the data the model "
                          "will meet differs from the training data in a way this split does not hold out (other speakers, "
                          "words, devices), give each example that as its group: validation then holds whole groups out "
                          "(docs/guide.md, \"Splits and the objective\").")
    params = TrialParams(**chosen.user_attrs["params"])
    store = ctx.stores[params.backbone]
    ensemble = None  # what the members are, where there are several
    if settings.refit:
        states = fold_models.get(chosen.number)
        ensemble = "fold models" if states else None
        if not states:
            with counted(ctx.console, f"refitting trial {chosen.number}'s configuration on train + validation",
                         "refit batches") as progress:
                states = [refit(chosen, store, len(splits.classes), settings.objective, settings.seed, ctx.compute, progress)]
            own = run.weights_path(chosen.number)
            if own.exists():  # kept for the best trial (and every trial where a margin ranks them)
                states.append(torch.load(own, weights_only=True))
                ensemble = "refit and own"
        atomic_write(run.final_weights_path, lambda f: torch.save(states if len(states) > 1 else states[0], f), mode="wb")
    else:
        weights = run.weights_path(chosen.number)
        if not weights.exists():
            ctx.console.print(f"[yellow]trial {chosen.number}'s weights are not in {run.root}[/] (another worker ran it, "
                              "or only the best trial's are kept: refit = true tests any choice)")
            return
        states = [torch.load(weights, weights_only=True)]
    tails = [Tail.trained(ctx.backbones[params.backbone], params, len(splits.classes), state) for state in states]
    with ctx.console.status("evaluating on the test split"):
        predictions = averaged(tails, store, "test", params)
    truth = store.labels("test").numpy()
    groups = [e.group for e in splits.test]
    result = {
        "trial": chosen.number, **why,
        "refit": settings.refit, "trained_on": "train+validation" if settings.refit else "train", "members": len(states),
        **({"ensemble": ensemble} if ensemble and len(states) > 1 else {}),
        "n": len(splits.test),
        **detailed(truth, predictions, splits.classes),
        "intervals": {m: interval(truth, predictions, len(splits.classes), m, groups) for m in ("accuracy", "macro_f1")},
    }
    if "target_test" in store.examples:  # labelled target data: evaluated once, like the test split
        with ctx.console.status("evaluating on the target test set"):
            predicted = averaged(tails, store, "target_test", params)
        result["target"] = {"n": len(store.examples["target_test"]),
                            **detailed(store.labels("target_test").numpy(), predicted, splits.classes)}
    _deliver(study, run, result)


def _deliver(study: optuna.Study, run: RunDir, result: dict[str, Any]) -> None:
    """The test result makes the tested model the run's: unfinished trials' checkpoints are no longer its model."""
    study.set_user_attr("test", result)
    write_json(run.test_path, result)
    for checkpoint in run.checkpoints():
        run.drop_checkpoint(checkpoint["trial"])


def refit(trial: FrozenTrial, store: FeatureStore, n_classes: int, objective: str, seed: int,
          compute: Compute, progress: Count | None = None) -> State:
    """``trial``'s configuration trained again on train + validation (``store``'s), for `refit_epochs`;
    ``seed`` is the search's (a search and bench/final_model.py make the same refit from it). ``progress``
    hears the batches trained, of all the epochs'."""
    params = TrialParams(**trial.user_attrs["params"])
    refit_params = replace(params, epochs=refit_epochs(trial, params.epochs))
    batches = itertools.count(1)

    def on_batch(_: int, per_epoch: int) -> None:
        if progress is not None:
            progress(next(batches), per_epoch * refit_params.epochs)

    return train_trial(refit_params, store.merged(["train", "validation"]), n_classes, objective,
                       seed=seed * 100_003 + trial.number, on_batch=on_batch, compute=compute).state


def averaged(tails: list[Tail], store: FeatureStore, split: str, params: TrialParams) -> np.ndarray:
    """The class each example of ``split`` gets from the tails' averaged probabilities, computed as delivered."""
    return probabilities(tails, store, split, input_mode(params), params, DELIVERED).argmax(dim=-1).numpy()


def _cross_validated(
    trials: list[FrozenTrial], run: RunDir, ctx: FinalContext, doubt: str,
) -> tuple[Choice, dict[str, Any], dict[int, list[State]]]:
    """The choice among ``trials`` (`crossval.candidates`) made again on out-of-fold predictions over the folds of
    the train split (`automl_tl.search.crossval`), with the chosen configuration's fold models; trained here, or
    shared out with the search's helpers while they run. Its model for the validation fold is its own trial where
    that can be (`crossval.validation_fold`)."""
    settings, n_classes = ctx.config.search, len(ctx.splits.classes)
    folds, labels, train = _fold_jobs(trials, ctx)
    scored = range(1, len(folds))  # the first is the validation split, which made the candidates: not theirs to re-score
    jobs = [(t.number, k) for t in trials for k in scored]
    where = f"{len(scored)} folds of the train split"
    expected = len(scored) * sum(seconds(t) or 0.0 for t in trials)  # a fold model trains on about as many examples as its trial
    if ctx.helpers is not None and (started := ctx.helpers.start_for_folds(len(scored), expected)):
        ctx.console.print(f"{started} helper(s) train fold models beside this process, one thread each")
    share = ctx.helpers.share() if ctx.helpers is not None else None
    about = f" (about {max(1, round(expected / 60))} min of training)" if expected else ""  # the trials' own times, once per fold
    what = f"{doubt}: cross-validating trials {', '.join(str(t.number) for t in trials)} on {where}{about}"
    with counted(ctx.console, what, "fold models", len(jobs)) as progress:
        if share is None:
            models = {}
            for job in jobs:
                models[job] = train(job)
                progress(len(models))
        else:
            share.publish(jobs)
            share.work(jobs, train, progress)
            models = share.collect(jobs, train, progress)
    held = np.sort(np.concatenate([folds[k] for k in scored]))
    predictions = {t.number: crossval.out_of_fold([folds[k] for k in scored], [models[(t.number, k)] for k in scored])
                   for t in trials}
    again = choose(trials, labels[held], n_classes, settings.objective, predictions, where=where)
    assert again is not None
    record = {"folds": len(folds), "examples": len(held), "why": doubt,
              "scores": {str(n): score_of(labels[held], p, n_classes, settings.objective) for n, p in predictions.items()}}
    if not settings.refit:  # the final model is the chosen trial's own: the folds only re-scored
        return again, record, {}
    chosen = again.trial.number
    own = crossval.validation_fold(again.trial, run.weights_path(chosen), run.last_weights_path(chosen))
    record["validation_fold_model"] = "its trial"
    if own is None:  # the run kept no weights of the trial that are a fold model: its validation fold's model trains now
        with counted(ctx.console, f"training trial {chosen}'s model for the validation fold", "fold models", 1) as progress:
            own, record["validation_fold_model"] = train((chosen, 0))[1], "trained"
            progress(1)
    return again, record, {chosen: [own, *(models[(chosen, k)][1] for k in scored)]}


def _fold_jobs(
    trials: Sequence[FrozenTrial], ctx: FinalContext,
) -> tuple[list[list[int]], np.ndarray, Callable[[Job], crossval.FoldModel]]:
    """The folds of train + validation (the validation split the first), its labels, and what trains job (trial, fold):
    the same in the search and its helpers."""
    settings, by_number = ctx.config.search, {t.number: t for t in trials}
    merged = {name: store.merged(["train", "validation"]) for name, store in ctx.stores.items()}
    labelled = next(iter(merged.values()))  # every backbone's store holds the same examples
    folds = crossval.fold_indices(labelled.examples["train"], len(ctx.splits.validation), crossval.FOLDS, settings.seed)

    def train(job: Job) -> crossval.FoldModel:
        trial = by_number[job[0]]
        return crossval.fold_model(trial, merged[trial.user_attrs["params"]["backbone"]], folds, job[1], len(ctx.splits.classes),
                                   settings.objective, settings.seed, ctx.compute)

    return folds, labelled.labels("train").numpy(), train


def serve_folds(study: optuna.Study, run: RunDir, ctx: FinalContext, owner: int) -> None:
    """A helper's part after the trials: train the fold models its search (process ``owner``) shares out,
    until the search stops it, or ends without doing so."""
    share = FoldShare(run, owner)
    served: list[Job] = []
    while os.getppid() == owner:
        plan = share.plan()
        if plan and plan != served:
            wanted = {number for number, _ in plan}
            share.work(plan, _fold_jobs([t for t in study.get_trials(deepcopy=False) if t.number in wanted], ctx)[2])
            served = plan
        time.sleep(POLL_SECONDS)
