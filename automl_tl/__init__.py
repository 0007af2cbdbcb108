"""automl-tl: search *how* to transfer a pretrained backbone to a small labelled dataset.

``automl_tl.load_model(path)`` loads a run's final model or an exported bundle (see
`automl_tl.model`); it is imported on first use, so ``import automl_tl`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automl_tl.model.predictor import load_model

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from automl_tl.model.predictor import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
