"""Runs a search end to end, and reads as its story: the data, the run, the backbones, the study,
the trials (`automl_tl.search.objective`), the one test evaluation.

A run is resumable by construction: the study lives in its storage, each trial's record is
written atomically when it ends, and re-running the same command loads the study, checks that
the data and settings are the same, and spends only what is left of the budget. What an
interrupted trial means, and how a dead worker's trial is found, is `automl_tl.trials`'s.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from rich.console import Console
from rich.markup import escape

from automl_tl.backbone import Backbone
from automl_tl.config import RunConfig, plugin_options
from automl_tl.contract import ModalityPlugin
from automl_tl.domains import TargetSplits, selection
from automl_tl.errors import UserError
from automl_tl.leaderboard import Leaderboard
from automl_tl.progress import SearchDisplay
from automl_tl.registry import catalogue, expect, starting_points
from automl_tl.rundir import FORMAT_VERSION, RunDir, atomic_write, write_json
from automl_tl.search.budget import Budget, Tally
from automl_tl.search.cache import DiskCache
from automl_tl.search.features import FeatureStore
from automl_tl.search.inputs import PreparedData, SearchRequest, environment, fingerprint, load_data, study_name
from automl_tl.search.metrics import detailed
from automl_tl.search.model import Tail
from automl_tl.search.objective import Objective, TrialContext, chosen_trial, keep_best_weights
from automl_tl.search.sampler import PerTrialSeed
from automl_tl.search.space import SearchSpace
from automl_tl.search.train import Compute, input_mode, predict, resolve_bf16, train_trial
from automl_tl.splits import Splits
from automl_tl.storage import open_storage, open_study
from automl_tl.trials import STARTING_POINT, is_interrupted, reap, record_interrupted
from automl_tl.vocabulary import STRATEGIES, BackboneShape, TrialParams

WAIT_POLL_SECONDS = 5
"""How often a worker waiting for other workers' last trials looks at the storage (at most)."""


class Interrupted(Exception):
    """Ctrl-C stopped the trials: the running one is marked interrupted and queued again; ``board`` shows the rest."""

    def __init__(self, board: Leaderboard) -> None:
        super().__init__("interrupted")
        self.board = board


class SearchRun:
    """One `automl-tl search` invocation; ``console`` is where it tells the user what it does."""

    def __init__(self, request: SearchRequest, plugin: ModalityPlugin, console: Console) -> None:
        self.request = request
        self.config = request.config
        self.plugin = plugin
        self.console = console
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        settings = request.config.search
        self.compute = Compute(cached=settings.cache, bf16=resolve_bf16(settings.precision))
        """How every trial, the refit and the test evaluation compute (resolved once: ``auto`` asks the CPU)."""

    def run(self) -> Leaderboard:
        """Load the data, search until the budget is spent (or resume), then test the best once."""
        cfg = self.config
        prepared = load_data(self.plugin, self.request)
        splits = prepared.splits
        self._show_data(prepared)
        run, name, meta, resumed = self._open_run(prepared)

        space = SearchSpace.resolve(self.plugin.search_space(), cfg.space, backbones=self._default_backbones())
        backbones = {n: self._build(n) for n in space.choices("backbone")}
        shapes = {n: BackboneShape(b.depth, b.uniform_width, b.has_batchnorm(), prepared.target is not None)
                  for n, b in backbones.items()}
        study, created = self._study(run, name, space, cfg)
        if not resumed or "run" not in study.user_attrs:
            study.set_user_attr("run", meta)
        if created:
            self._queue_first_trials(study, space, shapes)
        reap(study, run, cfg.search.heartbeat)
        keep_best_weights(study, run, self.config)

        tally = Tally.of(study.get_trials(deepcopy=False))
        remaining_time = None if cfg.search.timeout is None else cfg.search.timeout - tally.spent_seconds
        if tally.spent_trials or tally.interrupted:
            again = f"; {tally.interrupted} interrupted, not counted" if tally.interrupted else ""
            self.console.print(f"resuming study {name!r}: {tally.spent_trials} trial(s) already done{again}")

        display = SearchDisplay(self.console, cfg.search.n_trials, cfg.search.timeout, tally.spent_trials, cfg.search.objective)
        budget = Budget(
            cfg.search.n_trials, cfg.search.timeout, reap=lambda s: reap(s, run, cfg.search.heartbeat),
            poll=min(cfg.search.heartbeat, WAIT_POLL_SECONDS),
            on_wait=lambda running: display.stage(f"waiting for {running} trial(s) running on other workers", 0, 0),
        )
        stores = self._stores(run, backbones, space, splits, prepared.target, display)
        interrupted = False
        with display:
            self._warm_up(stores, space)
            if (remaining_time is None or remaining_time > 0) and budget.room(study):
                objective = Objective(TrialContext(run, space, shapes, stores, len(splits.classes), cfg.search,
                                                   self.compute, budget, display, self.worker, *selection(cfg)))
                interrupted = self._optimize(study, run, objective, budget, remaining_time)
            else:
                self.console.print("the budget is already spent; raise --n-trials or --timeout to search on")
        if interrupted:
            raise Interrupted(Leaderboard.from_study(study))
        self._evaluate_test(study, run, stores, backbones, splits)
        return Leaderboard.from_study(study)

    def _show_data(self, prepared: PreparedData) -> None:
        """What was loaded and how it was split: the first thing a user checks."""
        splits = prepared.splits
        self.console.print(f"[bold]data[/]: {escape(prepared.data.description)}")
        if prepared.data.skipped:
            self.console.print(f"[yellow]skipped {len(prepared.data.skipped)} input(s)[/], e.g. {escape(prepared.data.skipped[0])}")
        sizes = splits.sizes()
        self.console.print(
            f"[bold]splits[/]: {sizes['train']} train / {sizes['validation']} validation / {sizes['test']} test, "
            f"{len(splits.classes)} classes ({escape(splits.description)})"
        )
        if prepared.target is not None:
            chosen, margin = selection(self.config)
            guard = f", adapted trials kept within {margin} of source-only source validation" if margin is not None else ""
            self.console.print(f"[bold]target[/]: {escape(prepared.target.description)}; trials chosen by {chosen}{guard}")

    def _open_run(self, prepared: PreparedData) -> tuple[RunDir, str, dict[str, Any], bool]:
        """The run directory, study name, run metadata, and whether an earlier run is resumed.

        A run directory written with other data or settings is refused rather than resumed: its
        trials would not be comparable with the new ones.
        """
        name = study_name(self.config, prepared.name)
        run = RunDir(self.request.run_dir or Path("runs") / name)
        run.create()
        key = fingerprint(self.config, prepared.splits, prepared.target)
        saved = run.load_config()
        if saved is not None and saved.get("fingerprint") != key:
            raise UserError(
                f"run directory {run.root} holds a search with different data or settings",
                hint="re-run with the original settings to resume, or pass a new --study / --run-dir",
            )
        meta = self._meta(prepared, key)
        write_json(run.config_path, {"format_version": FORMAT_VERSION, "study": name, "storage": self.request.storage, **meta})
        return run, name, meta, saved is not None

    def _stores(
        self, run: RunDir, backbones: dict[str, Backbone], space: SearchSpace, splits: Splits,
        target: TargetSplits | None, display: SearchDisplay,
    ) -> dict[str, FeatureStore]:
        """One feature store per backbone, disk-backed in the run directory unless caching is off."""
        disk = DiskCache(run.cache_dir) if self.config.search.cache else None
        parts = {"train": splits.train, "validation": splits.validation, "test": splits.test,
                 **(target.splits() if target else {})}
        stores = {
            n: FeatureStore(b, parts, splits.classes, progress=display.stage, disk=disk)
            for n, b in backbones.items()
        }
        for store in stores.values():
            store.cached_depths = space.cached_depths(store.backbone.depth)
        return stores

    def _warm_up(self, stores: dict[str, FeatureStore], space: SearchSpace) -> None:
        """Decode every file now, so a bad one stops the run before any trial; then the one frozen pass."""
        for store in stores.values():
            for split in store.examples:
                store.raws(split)
            if self.config.search.cache and any(STRATEGIES[s].cached for s in space.choices("strategy")):
                # one pass serves every feature-extraction trial and planned prefix
                for split in ("train", "validation", "target", "target_validation"):
                    if split in store.examples:
                        store.pooled(split)

    def _optimize(self, study: optuna.Study, run: RunDir, objective: Objective, budget: Budget, timeout: float | None) -> bool:
        """Run trials until the budget is spent; True when Ctrl-C stopped them.

        Ctrl-C, or a user error such as a full disk, stops the search; the running trial is
        recorded as interrupted and queued again. A worker that stalled longer than the heartbeat
        grace (a suspended laptop, a paused VM) finds on waking that another worker gave its trial
        up for dead and queued it again; Optuna then refuses the late result. That trial stays
        interrupted, its record says so, and the worker goes on with the next one.
        """
        started = time.monotonic()
        while True:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            try:
                study.optimize(objective, timeout=left, callbacks=[budget, lambda s, t: keep_best_weights(s, run, self.config)])
                return False
            except ValueError:
                late = None if objective.current is None else study._storage.get_trial(objective.current)
                if late is None or late.state != TrialState.FAIL or "fail_reason" in late.user_attrs:
                    raise
                self.console.print(f"[yellow]trial {late.number} was given up for dead while this worker stalled[/]; "
                                   "another worker runs it again")
                record_interrupted(study, run, late)
            except (KeyboardInterrupt, UserError) as exc:
                stopped = None if objective.current is None else study._storage.get_trial(objective.current)
                if stopped is not None and is_interrupted(stopped):
                    record_interrupted(study, run, stopped)
                if isinstance(exc, UserError):
                    raise
                return True

    def _default_backbones(self) -> list[str]:
        available = [b.name for b in catalogue(self.plugin) if b.available_offline]
        default = self.plugin.default_backbone
        return [default] + [b for b in available if b != default] if default in available else available or [default]

    def _build(self, name: str) -> Backbone:
        self.console.print(f"[bold]backbone[/]: loading {name}")
        options = plugin_options(self.plugin, self.config.options)
        return expect(self.plugin, "build_backbone()", self.plugin.build_backbone(name, options), Backbone)

    def _queue_first_trials(self, study: optuna.Study, space: SearchSpace, shapes: dict[str, BackboneShape]) -> None:
        """A fresh study's first trials: the linear-probe baseline, then the plugin's starting points."""
        baseline = space.baseline(shapes)
        if baseline is not None:
            study.enqueue_trial(baseline, user_attrs={"baseline": "linear probe"})
        for point in starting_points(self.plugin):
            params = space.params_of(point, shapes)
            if params is not None and params != baseline:
                study.enqueue_trial(params, user_attrs={STARTING_POINT: self.plugin.name})

    def _study(self, run: RunDir, name: str, space: SearchSpace, cfg: RunConfig) -> tuple[optuna.Study, bool]:
        """The run's study, and whether this worker created it (only the creator queues the baseline)."""
        url = self.request.storage or run.default_storage
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats, grouped TPE
        storage = open_storage(url, cfg.search.heartbeat, lambda study, trial: record_interrupted(study, run, trial))
        n_trials = cfg.search.n_trials or 50
        sampler = PerTrialSeed(
            lambda seed: optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=max(3, min(10, n_trials // 3)),
                multivariate=True,
                group=True,
                constant_liar=True,  # workers sharing the study steer away from each other's running trials
            ),
            cfg.search.seed,
        )
        epochs_high = int(space.dims["epochs"][1])
        pruner: optuna.pruners.BasePruner
        if cfg.search.pruner == "hyperband":
            pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs_high, reduction_factor=3)
        elif cfg.search.pruner == "halving":
            pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        else:
            pruner = optuna.pruners.NopPruner()
        return open_study(storage, name, sampler, pruner)

    def _meta(self, prepared: PreparedData, key: str) -> dict[str, Any]:
        splits = prepared.splits
        return {
            "modality": self.config.modality,
            "objective": selection(self.config)[0],
            "selection": {"source_metric": self.config.search.objective, "margin": selection(self.config)[1]},
            "seed": self.config.search.seed,
            "data": {
                "name": prepared.name,
                "description": prepared.data.description,
                "split": splits.description,
                "sizes": splits.sizes(),
                "classes": splits.classes,
                "group_name": prepared.data.group_name,
                **({"target": prepared.target.description} if prepared.target else {}),
            },
            "config": self.config.model_dump(mode="json"),
            "command": self.request.command,
            "environment": environment(),
            "fingerprint": key,
        }

    def _evaluate_test(
        self, study: optuna.Study, run: RunDir, stores: dict[str, FeatureStore], backbones: dict[str, Backbone], splits: Splits
    ) -> None:
        """Evaluate the best configuration once on the test split (selection never saw it).

        With ``refit`` (the default) the best configuration is first retrained on train and
        validation together, for as many epochs as its best validation epoch: the final model
        then learns from every labelled example outside the test split, which matters most when
        groups are few (a speaker held out for validation is a speaker the model never heard).
        """
        best = chosen_trial(study, self.config)
        if best is None:
            return
        existing = study.user_attrs.get("test")
        if existing and existing.get("trial") == best.number:
            return
        params = TrialParams(**best.user_attrs["params"])
        store = stores[params.backbone]
        tail = Tail(backbones[params.backbone], params, len(splits.classes))
        refit = self.config.search.refit
        if refit:
            refit_params = replace(params, epochs=int(best.user_attrs.get("best_epoch", params.epochs)))
            with self.console.status(f"refitting trial {best.number}'s configuration on train + validation"):
                outcome = train_trial(
                    refit_params, store.merged(["train", "validation"]), len(splits.classes), self.config.search.objective,
                    seed=self.config.search.seed * 100_003 + best.number, on_epoch=lambda entry: None, on_batch=lambda d, t: None,
                    compute=self.compute,
                )
            tail.load_state_dict(outcome.state)
            atomic_write(run.final_weights_path, lambda f: torch.save(outcome.state, f), mode="wb")
        else:
            weights = run.weights_path(best.number)
            if not weights.exists():
                self.console.print(f"[yellow]the best trial's weights are not in {run.root}[/] (another worker ran it)")
                return
            tail.load_state_dict(torch.load(weights, weights_only=True))
        with self.console.status("evaluating on the test split"):
            predictions = predict(tail, store, "test", input_mode(params), params, self.compute)
        result = {"trial": best.number, "refit": refit, "trained_on": "train+validation" if refit else "train",
                  "n": len(splits.test), **detailed(store.labels("test").numpy(), predictions, splits.classes)}
        if "target_test" in store.examples:  # labelled target data: evaluated once, like the test split
            with self.console.status("evaluating on the target test set"):
                predictions = predict(tail, store, "target_test", input_mode(params), params, self.compute)
            result["target"] = {"n": len(store.examples["target_test"]),
                                **detailed(store.labels("target_test").numpy(), predictions, splits.classes)}
        study.set_user_attr("test", result)
        write_json(run.test_path, result)

