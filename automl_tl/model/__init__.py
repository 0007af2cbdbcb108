"""Using a trained model: the Python API, prediction, export as a bundle, model cards.

``load_model`` and ``Model`` are imported lazily: this package's `source` module is read by the
leaderboard, which must not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automl_tl.model.predictor import Model, Prediction, load_model

__all__ = ["Model", "Prediction", "load_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from automl_tl.model import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
