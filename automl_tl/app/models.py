"""Trained models for Try it and the mistakes gallery, through the public `automl_tl.load_model`.

A model is loaded once per final weights file (a refit replaces the file, and so the model), and
the test examples it gets wrong are found once per model: both cost a backbone load and a pass
over data, which a page must not repeat on every visit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl_tl.model.source import final_model
from automl_tl.rundir import RunDir

if TYPE_CHECKING:
    from automl_tl.model.predictor import Model


@dataclass(frozen=True)
class Mistake:
    """A test example the final model got wrong."""

    item: Any
    """What the plugin's examples are: a file's path, or a text."""
    label: str
    predicted: str
    confidence: float
    """The probability the model gave its wrong answer: the surest mistakes are the most telling."""


@dataclass(frozen=True)
class Mistakes:
    wrong: list[Mistake]
    """Most confident first."""
    tested: int


class Models:
    """Loaded models and their test mistakes, by run folder, shared by every browser tab."""

    def __init__(self) -> None:
        self._models: dict[Path, tuple[tuple[Path, float], Model]] = {}
        self._mistakes: dict[tuple[Path, float], Mistakes] = {}
        self._lock = threading.Lock()

    def model(self, run: Path) -> Model:
        """The run's final model; a `UserError` when the run has none yet."""
        from automl_tl.model.predictor import load_model  # torch loads on first use, not at start-up

        key = _weights(run)
        with self._lock:  # one load at a time: two tabs asking at once must not load the backbone twice
            kept = self._models.get(run)
            if kept is None or kept[0] != key:
                kept = (key, load_model(run))
                self._models[run] = kept
            return kept[1]

    def mistakes(self, run: Path) -> Mistakes:
        """The run's test examples its final model gets wrong, read again from the run's data."""
        key = _weights(run)
        with self._lock:
            if key in self._mistakes:
                return self._mistakes[key]
        model = self.model(run)
        test = model.test_examples()
        results = model.classify([e.item for e in test], top_k=1)
        wrong = [Mistake(e.item, e.label, r.label, r.score) for e, r in zip(test, results, strict=True)
                 if r.error is None and r.label is not None and r.score is not None and r.label != e.label]
        found = Mistakes(sorted(wrong, key=lambda m: -m.confidence), len(test))
        with self._lock:
            self._mistakes[key] = found
        return found


def _weights(run: Path) -> tuple[Path, float]:
    """The final model's weights file and when it was written: what identifies the model."""
    found = final_model(RunDir(run))
    if found is None:
        return (run, 0.0)  # load_model says why there is no model
    path = found.weights
    return (path, path.stat().st_mtime)
