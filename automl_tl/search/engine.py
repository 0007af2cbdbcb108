"""Runs a search end to end: data, backbones, the Optuna study, trial records, the one test evaluation.

A run is resumable by construction: the study lives in its storage, each trial's record is
written atomically when it ends, and re-running the same command loads the study, checks that
the data and settings are the same, and spends only what is left of the budget.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from rich.markup import escape

from automl_tl import __version__
from automl_tl.backbone import Backbone
from automl_tl.config import GRACE_BEATS, RunConfig
from automl_tl.contract import DataRequest, LabelledData, ModalityPlugin
from automl_tl.datahome import resolve_dataset
from automl_tl.errors import TrialFailed, UserError
from automl_tl.leaderboard import Leaderboard
from automl_tl.model.source import record_backbones
from automl_tl.progress import SearchDisplay, describe
from automl_tl.registry import catalogue, check_data, expect, starting_points
from automl_tl.rundir import FORMAT_VERSION, RunDir, atomic_write, write_json
from automl_tl.search.budget import Budget, Tally
from automl_tl.search.cache import DiskCache
from automl_tl.search.features import FeatureStore
from automl_tl.search.metrics import detailed
from automl_tl.search.model import Tail
from automl_tl.search.sampler import PerTrialSeed
from automl_tl.search.space import BackboneShape, SearchSpace, TrialParams
from automl_tl.search.train import Compute, best_epoch, input_mode, predict, resolve_bf16, train_trial
from automl_tl.splits import Splits, make_splits
from automl_tl.storage import open_storage, open_study
from automl_tl.trials import INTERRUPTED, STARTING_POINT, fail_reason, is_interrupted, requeue, retry_due

WAIT_POLL_SECONDS = 5
"""How often a worker waiting for other workers' last trials looks at the storage (at most)."""


class Interrupted(Exception):
    """Ctrl-C stopped the trials: the running one is marked interrupted and queued again; ``board`` shows the rest."""

    def __init__(self, board: Leaderboard) -> None:
        super().__init__("interrupted")
        self.board = board


@dataclass
class SearchRequest:
    """Everything the command line resolved, before anything is loaded."""

    config: RunConfig
    data_home: Path
    run_dir: Path | None = None
    storage: str | None = None
    command: list[str] = field(default_factory=list)


@dataclass
class PreparedData:
    data: LabelledData
    splits: Splits
    name: str


def load_data(plugin: ModalityPlugin, request: SearchRequest) -> PreparedData:
    """Find the data (path, named dataset or the plugin's default), read it and split it."""
    cfg = request.config.data
    if cfg.dataset is not None:
        path: Path | None = resolve_dataset(cfg.dataset, request.data_home)
        name = cfg.dataset
    elif cfg.path is not None:
        path = _existing(cfg.path, request.data_home, "data path")
        name = path.stem or path.name
    else:
        path, name = None, "default"
    test_path = _existing(cfg.test_path, request.data_home, "test path") if cfg.test_path else None
    data = check_data(plugin, plugin.load_data(
        DataRequest(
            path=path,
            data_home=request.data_home,
            test_path=test_path,
            options=request.config.options,
            skip_bad_files=cfg.skip_bad_files,
            seed=request.config.search.seed,
        )
    ))
    return PreparedData(data, make_splits(data, cfg, request.config.search.seed), name)


def _existing(path: Path, data_home: Path, what: str) -> Path:
    """A user path as given, else relative to the data home; a `UserError` when neither exists."""
    if path.exists():
        return path
    if not path.is_absolute() and (data_home / path).exists():
        return data_home / path
    raise UserError(f"{what} {path} does not exist", hint=f"check the path (also looked in the data home {data_home})")


def study_name(config: RunConfig, data_name: str) -> str:
    return config.study or f"{config.modality}-{data_name}".replace(" ", "-")


def fingerprint(config: RunConfig, splits: Splits) -> str:
    """What a resumed run must share with the original: data, space, options, objective (not the budget)."""
    settings = config.model_dump(mode="json", exclude={"search": {"n_trials", "timeout", "refit", "cache", "precision", "heartbeat"}, "study": True})
    data = [[split, str(e.item), e.label, e.group] for split in ("train", "validation", "test") for e in getattr(splits, split)]
    blob = json.dumps({"settings": settings, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def environment() -> dict[str, Any]:
    return {
        "automl_tl": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "native_bf16": resolve_bf16("auto"),
    }


class Search:
    """One `automl-tl search` invocation."""

    def __init__(self, request: SearchRequest, plugin: ModalityPlugin, display_console: Any) -> None:
        self.request = request
        self.config = request.config
        self.plugin = plugin
        self.console = display_console
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.budget: Budget | None = None
        search = request.config.search
        self.compute = Compute(cached=search.cache, bf16=resolve_bf16(search.precision))
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
        shapes = {n: BackboneShape(b.depth, b.uniform_width, b.has_batchnorm()) for n, b in backbones.items()}
        record_backbones(run, self.plugin, backbones, cfg.options)
        study, created = self._study(run, name, space, cfg)
        if not resumed or "run" not in study.user_attrs:
            study.set_user_attr("run", meta)
        if created:
            self._queue_first_trials(study, space, shapes)
        self._reap(study, run)
        self._prune_weights(study, run)

        tally = Tally.of(study.get_trials(deepcopy=False))
        remaining_time = None if cfg.search.timeout is None else cfg.search.timeout - tally.spent_seconds
        if tally.spent_trials or tally.interrupted:
            again = f"; {tally.interrupted} interrupted, not counted" if tally.interrupted else ""
            self.console.print(f"resuming study {name!r}: {tally.spent_trials} trial(s) already done{again}")

        display = SearchDisplay(self.console, cfg.search.n_trials, cfg.search.timeout, tally.spent_trials, cfg.search.objective)
        self.budget = Budget(
            cfg.search.n_trials, cfg.search.timeout, reap=lambda s: self._reap(s, run),
            poll=min(cfg.search.heartbeat, WAIT_POLL_SECONDS),
            on_wait=lambda running: display.stage(f"waiting for {running} trial(s) running on other workers", 0, 0),
        )
        stores = self._stores(run, backbones, space, splits, display)
        interrupted = False
        with display:
            self._warm_up(stores, space)
            if (remaining_time is None or remaining_time > 0) and self.budget.room(study):
                objective = _Objective(self, run, space, shapes, stores, splits, display)
                interrupted = self._optimize(study, run, objective, remaining_time)
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

    def _open_run(self, prepared: PreparedData) -> tuple[RunDir, str, dict[str, Any], bool]:
        """The run directory, study name, run metadata, and whether an earlier run is resumed.

        A run directory written with other data or settings is refused rather than resumed: its
        trials would not be comparable with the new ones.
        """
        name = study_name(self.config, prepared.name)
        run = RunDir(self.request.run_dir or Path("runs") / name)
        run.create()
        key = fingerprint(self.config, prepared.splits)
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
        self, run: RunDir, backbones: dict[str, Backbone], space: SearchSpace, splits: Splits, display: SearchDisplay
    ) -> dict[str, FeatureStore]:
        """One feature store per backbone, disk-backed in the run directory unless caching is off."""
        disk = DiskCache(run.cache_dir) if self.config.search.cache else None
        stores = {
            n: FeatureStore(b, {"train": splits.train, "validation": splits.validation, "test": splits.test},
                            splits.classes, progress=display.stage, disk=disk)
            for n, b in backbones.items()
        }
        for store in stores.values():
            store.planned_depths = space.prefix_depths(store.backbone.depth)
        return stores

    def _warm_up(self, stores: dict[str, FeatureStore], space: SearchSpace) -> None:
        """Decode every file now, so a bad one stops the run before any trial; then the one frozen pass."""
        for store in stores.values():
            for split in ("train", "validation", "test"):
                store.raws(split)
            if self.config.search.cache and set(space.choices("strategy")) & {"feature_extraction", "partial", "lp_ft"}:
                store.pooled("train")  # one pass serves every feature-extraction trial and planned prefix
                store.pooled("validation")

    def _optimize(self, study: optuna.Study, run: RunDir, objective: _Objective, timeout: float | None) -> bool:
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
                study.optimize(objective, timeout=left, callbacks=[self.budget, lambda s, t: self._prune_weights(s, run)])
                return False
            except ValueError:
                late = None if objective.current is None else study._storage.get_trial(objective.current)
                if late is None or late.state != TrialState.FAIL or "fail_reason" in late.user_attrs:
                    raise
                self.console.print(f"[yellow]trial {late.number} was given up for dead while this worker stalled[/]; "
                                   "another worker runs it again")
                self._interrupted(study, run, late)
            except (KeyboardInterrupt, UserError) as exc:
                stopped = None if objective.current is None else study._storage.get_trial(objective.current)
                if stopped is not None and is_interrupted(stopped):
                    self._interrupted(study, run, stopped)
                if isinstance(exc, UserError):
                    raise
                return True

    def _default_backbones(self) -> list[str]:
        available = [b.name for b in catalogue(self.plugin) if b.available_offline]
        default = self.plugin.default_backbone
        return [default] + [b for b in available if b != default] if default in available else available or [default]

    def _build(self, name: str) -> Backbone:
        self.console.print(f"[bold]backbone[/]: loading {name}")
        return expect(self.plugin, "build_backbone()", self.plugin.build_backbone(name, self.config.options), Backbone)

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
        storage = open_storage(url, cfg.search.heartbeat, lambda study, trial: self._interrupted(study, run, trial))
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

    def _reap(self, study: optuna.Study, run: RunDir) -> None:
        """Fail the running trials whose worker is gone, and record and re-queue each (see `automl_tl.trials`).

        Optuna's heartbeat check finds a worker on any machine once it has been silent for the
        grace period (its callback is `_interrupted`). Two cases need no such wait: a trial of a
        process on this machine that is no longer alive, and a trial that never said which worker
        runs it (killed as it was created, before its first heartbeat, so the heartbeat check
        would never see it) once a grace period has passed.
        """
        optuna.storages.fail_stale_trials(study)
        host = socket.gethostname()
        grace = timedelta(seconds=GRACE_BEATS * self.config.search.heartbeat)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get("worker", "")
            worker_host, _, pid = worker.rpartition(":")
            if worker_host == host and pid.isdigit() and not _alive(int(pid)):
                reason = f"{INTERRUPTED} (its process ended)"
            elif not worker and trial.datetime_start is not None and datetime.now() - trial.datetime_start > grace:
                reason = f"{INTERRUPTED} (its worker stopped before it began)"
            else:
                continue
            # the record first: a kill before the storage says FAIL repeats all of this next time
            _write_record(run, trial.number, "fail", trial.user_attrs.get("params", {}), None, reason, trial.user_attrs)
            try:
                study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker failed it first, and queues its retry
            requeue(study, study._storage.get_trial(trial._trial_id))
        # The worker that fails a trial queues its retry at once. One still missing a grace period
        # later means that worker was killed in between: queue it now. (Sooner would race with it.)
        trials = study.get_trials(deepcopy=False)
        for trial in trials:
            if retry_due(trial, trials) and trial.datetime_complete and datetime.now() - trial.datetime_complete > grace:
                requeue(study, trial)

    def _interrupted(self, study: optuna.Study, run: RunDir, trial: FrozenTrial) -> None:
        """Record an interrupted trial as failed (over any record it wrote before its end was stored) and queue it again."""
        reason = fail_reason(trial)
        _write_record(run, trial.number, "fail", trial.user_attrs.get("params", {}), None, reason, trial.user_attrs)
        requeue(study, trial)

    def _prune_weights(self, study: optuna.Study, run: RunDir) -> None:
        """Keep the weights of the best completed trial and of the trials still running, nothing else."""
        trials = study.get_trials(deepcopy=False)
        keep = {t.number for t in trials if t.state == TrialState.RUNNING}
        completed = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if completed:
            keep.add(max(completed, key=lambda t: t.value or 0.0).number)
        run.prune_weights(keep)

    def _meta(self, prepared: PreparedData, key: str) -> dict[str, Any]:
        splits = prepared.splits
        return {
            "modality": self.config.modality,
            "objective": self.config.search.objective,
            "seed": self.config.search.seed,
            "data": {
                "name": prepared.name,
                "description": prepared.data.description,
                "split": splits.description,
                "sizes": splits.sizes(),
                "classes": splits.classes,
                "group_name": prepared.data.group_name,
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
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not completed:
            return
        best = max(completed, key=lambda t: t.value or 0.0)
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
        study.set_user_attr("test", result)
        write_json(run.test_path, result)


class _Objective:
    """The function Optuna calls per trial; records every outcome, whatever it is."""

    def __init__(self, search: Search, run: RunDir, space: SearchSpace, shapes: dict[str, BackboneShape],
                 stores: dict[str, FeatureStore], splits: Splits, display: SearchDisplay) -> None:
        self.search = search
        self.run = run
        self.space = space
        self.shapes = shapes
        self.stores = stores
        self.n_classes = len(splits.classes)
        self.display = display
        self.objective = search.config.search.objective
        self.current: int | None = None
        """Storage id of the trial this worker started last."""

    def __call__(self, trial: optuna.Trial) -> float:
        """Run one trial; a stop (Ctrl-C, or a user error such as a full disk) marks it interrupted."""
        self.current = trial._trial_id
        trial.set_user_attr("worker", self.search.worker)  # first: a trial that names no worker is taken to be abandoned
        assert self.search.budget is not None
        if self.search.budget.taken(trial.study, trial.number):
            reason = f"{INTERRUPTED} (not started: other workers took the last of the budget)"
            trial.set_user_attr("fail_reason", reason)
            _write_record(self.run, trial.number, "fail", {}, None, reason, trial.user_attrs)
            trial.study.stop()
            return float("nan")
        try:
            return self._run(trial)
        except (KeyboardInterrupt, UserError) as exc:
            why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else exc.message
            trial.set_user_attr("fail_reason", f"{INTERRUPTED} ({why})")
            raise

    def _run(self, trial: optuna.Trial) -> float:
        params = self.space.sample(trial, self.shapes)
        trial.set_user_attr("params", params.to_dict())
        summary = describe(params.to_dict())
        self.display.trial_started(trial.number, summary)
        curve: list[dict[str, float]] = []
        # A plugin's starting point runs whole: a fine-tune measured to win can still trail a
        # linear probe after its first epoch (head-only training converges sooner), which is
        # exactly where the pruner would stop it.
        prunable = STARTING_POINT not in trial.user_attrs

        def on_epoch(entry: dict[str, float]) -> None:
            curve.append(entry)
            epoch = int(entry["epoch"])
            trial.report(entry[self.objective], epoch)
            self.display.epoch(epoch, params.epochs)
            # after the last epoch there is nothing left to save: the trial is complete, not pruned
            if prunable and epoch < params.epochs and trial.should_prune():
                raise optuna.TrialPruned()

        try:
            outcome = train_trial(
                params, self.stores[params.backbone], self.n_classes, self.objective,
                seed=self.search.config.search.seed * 100_003 + trial.number,
                on_epoch=on_epoch, on_batch=self.display.batch, compute=self.search.compute,
            )
        except optuna.TrialPruned:
            trial.set_user_attr("history", curve)
            self._finish(trial, params, "pruned", curve[best_epoch([c[self.objective] for c in curve])][self.objective])
            raise
        except UserError:
            raise
        except Exception as exc:  # a crashing trial must not end the search
            reason = failure_reason(exc)
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("history", curve)
            self._finish(trial, params, "fail", None, reason)
            return float("nan")  # Optuna records NaN as a failed trial
        value = outcome.scores[self.objective]
        for key, attr in (("scores", outcome.scores), ("history", outcome.history),
                          ("trainable_params", outcome.trainable_params), ("best_epoch", outcome.best_epoch)):
            trial.set_user_attr(key, attr)
        earlier_best = _best_completed(trial.study)
        if earlier_best is None or value > earlier_best:
            path = self.run.weights_path(trial.number)
            atomic_write(path, lambda f: torch.save(outcome.state, f), mode="wb")
        self._finish(trial, params, "complete", value)
        return value

    def _finish(self, trial: optuna.Trial, params: TrialParams, state: str, score: float | None, reason: str | None = None) -> None:
        _write_record(self.run, trial.number, state, params.to_dict(), score, reason, trial.user_attrs)
        best = _best_completed(trial.study)  # the finishing trial is not COMPLETE in storage yet
        if state == "complete" and score is not None:
            best = score if best is None else max(best, score)
        self.display.trial_finished(trial.number, describe(params.to_dict()), score, state, best)


def _write_record(
    run: RunDir, number: int, state: str, params: dict[str, Any], score: float | None, reason: str | None, user_attrs: dict[str, Any]
) -> None:
    record = {
        "trial": number,
        "state": state,
        "params": params,
        "score": score,
        "reason": reason,
        "user_attrs": user_attrs,
        "finished_at": time.time(),
    }
    write_json(run.trial_dir(number) / "record.json", record)


def _best_completed(study: optuna.Study) -> float | None:
    """The best objective value among the study's completed trials (None before the first)."""
    values = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return max(values) if values else None


def failure_reason(exc: BaseException) -> str:
    """One line for the leaderboard: what went wrong in a trial."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text.lower():
        return f"out of memory ({text[:120]})"
    if isinstance(exc, TrialFailed):
        return text
    return f"{type(exc).__name__}: {text[:160]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

