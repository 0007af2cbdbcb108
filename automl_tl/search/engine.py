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
from optuna.trial import TrialState
from rich.console import Console
from rich.markup import escape

from automl_tl.backbone import Backbone
from automl_tl.config import RunConfig, plugin_options
from automl_tl.contract import ModalityPlugin
from automl_tl.domains import SHIFT, TargetSplits, describe_shift, selection, shift_found, without_shift
from automl_tl.errors import UserError
from automl_tl.leaderboard import Leaderboard
from automl_tl.model.source import record_backbones
from automl_tl.progress import SearchDisplay
from automl_tl.provenance import Provenance
from automl_tl.registry import backbone_builder, catalogue, expect, provenance, starting_points
from automl_tl.rundir import FORMAT_VERSION, RunDir, write_json
from automl_tl.search.budget import Budget, Tally
from automl_tl.search.cache import DiskCache
from automl_tl.search.compute import Compute, resolve_bf16
from automl_tl.search.features import FeatureStore
from automl_tl.search.final import FinalContext, evaluate_test, serve_folds
from automl_tl.search.inputs import PreparedData, SearchRequest, environment, fingerprint, load_data, study_name
from automl_tl.search.objective import Objective, TrialContext, keep_best_weights
from automl_tl.search.sampler import sampler_and_pruner
from automl_tl.search.validators import domain_shift
from automl_tl.search.space import SearchSpace
from automl_tl.search.workers import Helpers
from automl_tl.splits import Splits
from automl_tl.storage import delete_if_unstarted, has_study, open_storage, open_study, redact
from automl_tl.trials import STARTING_POINT, is_interrupted, reap, record_interrupted
from automl_tl.vocabulary import STRATEGIES, BackboneShape

WAIT_POLL_SECONDS = 5
"""How often a worker waiting for other workers' last trials looks at the storage (at most)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped the trials: the running one is marked interrupted and queued again; ``board`` shows the rest."""

    def __init__(self, board: Leaderboard) -> None:
        super().__init__("interrupted")
        self.board = board


class SearchRun:
    """One `automl-tl search` invocation; ``console`` is where it tells the user what it does."""

    def __init__(self, request: SearchRequest, plugin: ModalityPlugin, console: Console, helper: bool = False,
                 folds_only: bool = False) -> None:
        self.request = request
        self.helper = helper
        """A helper of another search on this machine (`automl_tl.search.workers`): trials only, no test evaluation."""
        self.folds_only = folds_only
        """A helper started for the fold models alone, after the trials: it runs no trial."""
        self.config = request.config
        self.plugin = plugin
        self.console = console
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        settings = request.config.search
        self.compute = Compute(cached=settings.cache, bf16=resolve_bf16(settings.precision))
        """How every trial, the refit and the test evaluation compute (resolved once: ``auto`` asks the CPU)."""
        self.provenance: dict[str, Provenance] = {"": provenance(plugin)}
        """The plugin code behind the run: the modality's (key "") and each backbone's builder."""

    def run(self) -> Leaderboard:
        """Load the data, search until the budget is spent (or resume), then test the best once."""
        cfg = self.config
        prepared = load_data(self.plugin, self.request)
        splits = prepared.splits
        self._show_data(prepared)
        run, name, meta, resumed = self._open_run(prepared)
        study: optuna.Study | None = None
        try:  # until the first trial: a start that fails leaves nothing behind that blocks the next one
            space = SearchSpace.resolve(self.plugin.search_space(), cfg.space, backbones=self._default_backbones())
            backbones = {n: self._build(n) for n in space.choices("backbone")}
            self._preflight(backbones, splits)
            meta["plugins"] = [p.as_dict() for p in sorted(set(self.provenance.values()), key=lambda p: p.distribution)]
            shapes = {n: BackboneShape(b.depth, b.uniform_width, b.has_batchnorm(), prepared.target is not None)
                      for n, b in backbones.items()}
            record_backbones(run, self.plugin, backbones, cfg.options)
            study, created = self._study(run, name, space, cfg)
            if not resumed or "run" not in study.user_attrs:
                study.set_user_attr("run", meta)
            if created:
                self._queue_first_trials(study, space, shapes)
            reap(study, run, cfg.search.heartbeat)
            if not self.folds_only:  # a helper for the fold models leaves the run's files to its search
                keep_best_weights(study, run, cfg)
            tally = Tally.of(study.get_trials(deepcopy=False))
            display = SearchDisplay(self.console, cfg.search.n_trials, cfg.search.timeout, tally.spent_trials,
                                    cfg.search.objective, str(run.root))
            stores = self._stores(run, backbones, space, splits, prepared.target, display)
            with display:
                self._warm_up(stores, space)
            if prepared.target is not None:
                cfg, shapes = self._settle_selection(study, stores, meta, shapes)
        except BaseException:
            if not resumed:  # this search made the run: leave the directory as it found it
                if study is not None:
                    delete_if_unstarted(study)
                run.config_path.unlink(missing_ok=True)
            raise
        write_json(run.config_path, self._config_record(name, meta))  # now with the plugins that built the backbones

        remaining_time = None if cfg.search.timeout is None else cfg.search.timeout - tally.spent_seconds
        if tally.spent_trials or tally.interrupted:
            again = f"; {tally.interrupted} interrupted, not counted" if tally.interrupted else ""
            self.console.print(f"resuming study {name!r}: {tally.spent_trials} trial(s) already done{again}")

        budget = Budget(
            cfg.search.n_trials, cfg.search.timeout, reap=lambda s: reap(s, run, cfg.search.heartbeat),
            poll=min(cfg.search.heartbeat, WAIT_POLL_SECONDS),
            on_wait=lambda running: display.stage(f"waiting for {running} trial(s) running on other workers", 0, 0),
        )
        interrupted = False
        helpers = Helpers(run, self.request, 1 if self.helper else cfg.search.workers)
        with helpers:  # stopped however this block ends
            with display:
                if not self.folds_only and (remaining_time is None or remaining_time > 0) and budget.room(study):
                    deadline = None if remaining_time is None else time.monotonic() + remaining_time
                    objective = Objective(TrialContext(run, space, shapes, stores, len(splits.classes), cfg.search,
                                                       self.compute, budget, display, self.worker, *selection(cfg), deadline))
                    if started := helpers.start():
                        self.console.print(f"{started} helper(s) search beside this process, one thread each "
                                           f"(their output: {escape(str(helpers.folder))})")
                    interrupted = self._optimize(study, run, objective, budget)
                elif not self.folds_only:  # a helper for the fold models alone starts after the trials
                    self.console.print("the budget is already spent; raise --n-trials or --timeout to search on")
            if interrupted:
                raise Interrupted(Leaderboard.from_study(study))
            final = FinalContext(stores, backbones, splits, self.config, self.compute, self.console, helpers)
            if self.helper:  # the search it helps chooses and tests; a helper trains fold models for it, if asked
                serve_folds(study, run, final, os.getppid())
            else:
                evaluate_test(study, run, final)
        for problem in helpers.problems:
            self.console.print(f"[yellow]{escape(problem)}[/]")
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
            self.console.print(f"[bold]target[/]: {escape(prepared.target.description)}")

    def _settle_selection(self, study: optuna.Study, stores: dict[str, FeatureStore], meta: dict[str, Any],
                          shapes: dict[str, BackboneShape]) -> tuple[RunConfig, dict[str, BackboneShape]]:
        """The shift check (`automl_tl.domains.NO_SHIFT_AUC`) on the first backbone's cached features, then
        how the trials are chosen, in one line. Without a shift no method is sampled (``shapes``
        lose their target), so the trials are a search's without a target. Measured before any
        trial completes and kept in the study, so a resumed run and its helpers search alike; a run
        begun before the check goes on as it began."""
        shift = study.user_attrs.get(SHIFT)
        fresh = shift is None and selection(self.config)[1] is not None and not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if fresh:
            shift = domain_shift(next(iter(stores.values())))
            study.set_user_attr(SHIFT, shift)
        self.config = without_shift(self.config, shift)  # measured now, or at the run's first start
        if fresh:
            meta.update(self._choosing(), **{SHIFT: shift})
            study.set_user_attr("run", meta)
        chosen, margin = selection(self.config)
        guard = f", among trials within {margin} of the best source validation" if margin is not None else ""
        found = f"; {escape(describe_shift(shift))}" if shift else ""
        self.console.print(f"[bold]selection[/]: trials chosen by {chosen}{guard}{found}")
        return self.config, shapes if shift_found(shift) else {n: replace(shape, target=False) for n, shape in shapes.items()}

    def _open_run(self, prepared: PreparedData) -> tuple[RunDir, str, dict[str, Any], bool]:
        """The run directory, study name, run metadata, and whether an earlier run is resumed.

        A run directory written with other data or settings is refused rather than resumed: its
        trials would not be comparable with the new ones. The directory is claimed here, under a
        lock (`RunDir.claim`); `run` takes the claim back if the start fails before the first
        trial, so a failed start never leaves anything that blocks the corrected command.
        """
        name = study_name(self.config, prepared.name)
        run = RunDir(self.request.run_dir or Path("runs") / name)
        run.create()
        key = fingerprint(self.config, prepared.splits, prepared.target)
        meta = self._meta(prepared, key)

        def check(saved: dict[str, Any]) -> None:
            if saved.get("fingerprint") != key:
                raise UserError(f"run directory {run.root} holds a search with different data or settings",
                                hint="re-run with the original settings to resume, or pass a new --study / --run-dir")
            if saved.get("study") != name:  # one study per directory: their trial records would share names
                raise UserError(f"run directory {run.root} holds study {saved.get('study')!r}, not {name!r}",
                                hint=f"pass --study {saved.get('study')} to resume it, or a new --run-dir")

        resumed = run.claim(self._config_record(name, meta), check)
        return run, name, meta, resumed

    def _config_record(self, name: str, meta: dict[str, Any]) -> dict[str, Any]:
        """``config.json``: the run's metadata, the study's name and where it lives (its password hidden)."""
        storage = None if self.request.storage is None else redact(self.request.storage)
        return {"format_version": FORMAT_VERSION, "study": name, "storage": storage, **meta}

    def _preflight(self, backbones: dict[str, Backbone], splits: Splits) -> None:
        """The plugin kit's cheap checks (layout, widths, masks on two examples): a plugin breaking them
        would fail every trial, or let a prefix cached from padded batches change the results."""
        from automl_tl.testing.network import preflight

        items = [example.item for example in splits.train]
        for name, backbone in backbones.items():
            problem = preflight(backbone, items)
            if problem is not None:
                raise UserError(f"plugin {self.plugin.name!r}, backbone {name!r}: {problem}",
                                hint=f"`automl-tl plugins check {self.plugin.name}` runs every check of the plugin kit")

    def _stores(
        self, run: RunDir, backbones: dict[str, Backbone], space: SearchSpace, splits: Splits,
        target: TargetSplits | None, display: SearchDisplay,
    ) -> dict[str, FeatureStore]:
        """One feature store per backbone, disk-backed in the run directory unless caching is off."""
        disk = DiskCache(run.cache_dir) if self.config.search.cache else None
        parts = {"train": splits.train, "validation": splits.validation, "test": splits.test,
                 **(target.splits() if target else {})}
        stores = {
            n: FeatureStore(b, parts, splits.classes, progress=display.stage, disk=disk,
                            code=" ".join(sorted({self.provenance[""].label(), self.provenance[n].label()})))
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

    def _optimize(self, study: optuna.Study, run: RunDir, objective: Objective, budget: Budget) -> bool:
        """Run trials until the budget is spent; True when Ctrl-C or SIGTERM stopped them.

        Ctrl-C, or a user error such as a full disk, stops the search; the running trial is
        recorded as interrupted and queued again. A worker that stalled longer than the heartbeat
        grace (a suspended laptop, a paused VM) finds on waking that another worker gave its trial
        up for dead and queued it again; Optuna then refuses the late result. That trial stays
        interrupted, its record says so, and the worker goes on with the next one.
        """
        deadline = objective.context.deadline  # a trial still training then stops after its epoch (`Objective`)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
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
        """Backbone ``name`` from whichever plugin handles it; its notes are shown, its plugin's identity kept."""
        self.console.print(f"[bold]backbone[/]: loading {escape(name)}")
        options = plugin_options(self.plugin, self.config.options)
        builder = backbone_builder(self.plugin, name)
        backbone = expect(builder, "build_backbone()", builder.build_backbone(name, options), Backbone)
        for note in backbone.notes:
            self.console.print(f"[yellow]note[/]: {escape(note)}")
        self.provenance[name] = provenance(builder)
        return backbone

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
        if run.recorded_trials() and not has_study(storage, name):  # a deleted study.db, or the wrong --storage
            raise UserError(f"run directory {run.root} holds trial records but the storage {redact(url)} has no study {name!r}",
                            hint="restore the study's database (study.db) or pass the --storage that holds it; "
                                 "to start afresh, pass a new --run-dir")
        sampler, pruner = sampler_and_pruner(cfg.search, int(space.dims["epochs"][1]))
        study, created = open_study(storage, name, sampler, pruner)
        if created:  # optuna-dashboard and other Optuna tools then label the value with the objective
            study.set_metric_names([f"validation {cfg.search.objective}"])
        return study, created

    def _meta(self, prepared: PreparedData, key: str) -> dict[str, Any]:
        splits = prepared.splits
        return {
            "modality": self.config.modality,
            **self._choosing(),
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
            "command": self.request.command,
            "environment": environment(),
            "fingerprint": key,
        }

    def _choosing(self) -> dict[str, Any]:
        """The run metadata that says how trials are chosen, and the configuration as applied."""
        metric, margin = selection(self.config)
        return {"objective": metric, "selection": {"source_metric": self.config.search.objective, "margin": margin},
                "config": self.config.model_dump(mode="json")}
