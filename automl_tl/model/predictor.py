"""The Python API of a trained model: ``load_model(path).predict(items)``.

One model, three ways to run its network: the run directory's weights in PyTorch, an exported
bundle's ``model.onnx`` in onnxruntime, or its TorchScript ``model.pt``. Preprocessing is always
the plugin's own code, batched as in training (similar lengths together), so a clip gives the
same probabilities here as in the search's test evaluation. `automl-tl predict` is a thin layer
over `Model.classify`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from automl_tl.backbone import Backbone, Preprocessor
from automl_tl.config import RunConfig, plugin_options
from automl_tl.contract import Example, ModalityPlugin
from automl_tl.datahome import data_home
from automl_tl.errors import DataError, UserError
from automl_tl.model.network import Network
from automl_tl.model.source import ModelSource, check_plugin, check_preprocessor, read_source
from automl_tl.registry import backbone_builder, expect
from automl_tl.search.features import length_batches
from automl_tl.threads import torch_threads
from automl_tl.vocabulary import TrialParams

if TYPE_CHECKING:
    from automl_tl.search.inputs import PreparedData

BATCH_SIZE = 32
"""Examples per forward pass: the feature store's batch size, so batches pad alike."""
CHUNK = 1024
"""Examples decoded at a time: a long input list never has to fit in memory at once."""

Runner = Callable[[dict[str, Tensor]], np.ndarray]
"""Collated batch → class probabilities (B, n_classes)."""
ProgressFn = Callable[[int, int], None]


@dataclass
class Prediction:
    """One input's outcome: the top classes with their probabilities, or why it could not be predicted."""

    top: list[dict[str, Any]] = field(default_factory=list)
    """``[{"label": ..., "score": ...}, ...]``, best first (the shape of a Hugging Face pipeline's output)."""
    probs: dict[str, float] | None = None
    """Every class's probability, when asked for."""
    error: str | None = None

    @property
    def label(self) -> str | None:
        return self.top[0]["label"] if self.top else None

    @property
    def score(self) -> float | None:
        return self.top[0]["score"] if self.top else None


class Model:
    """A trained classifier: the plugin's preprocessing in front of the trained network."""

    def __init__(self, source: ModelSource, plugin: ModalityPlugin, preprocessor: Preprocessor, runner: Runner,
                 network: Network | None = None, backbone: Backbone | None = None) -> None:
        self.source = source
        self.plugin = plugin
        self.preprocessor = preprocessor
        self.run_network = runner
        self.network = network
        """The PyTorch network, for a model read from a run directory (export traces it)."""
        self.backbone = backbone
        """The pretrained backbone as the plugin built it, for a run directory's model (a bundle builds none;
        the network holds its own copies of the blocks it trained)."""

    @property
    def labels(self) -> list[str]:
        """The classes, in the order of the network's outputs."""
        return list(self.source.classes)

    @property
    def card(self) -> dict[str, Any]:
        """The model's test scores (accuracy, macro-F1, confusion matrix, per class), its data and split."""
        return self.source.card

    def test_examples(self) -> list[Example]:
        """The run's own test split, read again from its data as the search split it (see `run_data`)."""
        return self.run_data().splits.test

    def run_data(self) -> PreparedData:
        """The run's data read again and split as the search split it, with its target domain's parts.

        For a model read from a run directory, whose data is where the search found it; a
        `UserError` when that data is gone (or the model is a bundle, which keeps no data).
        """
        from automl_tl.search.inputs import SearchRequest, load_data  # the search side loads only when asked

        if self.source.kind != "run":
            raise UserError(f"{self.source.root} is an exported bundle, which keeps no data",
                            hint="use the run directory the search wrote")
        config = RunConfig.model_validate(self.source.config["config"])
        return load_data(self.plugin, SearchRequest(config=config, data_home=data_home()))

    def predict(self, items: Sequence[Any], top_k: int = 1) -> list[list[dict[str, Any]]]:
        """Per item (a path, a text: whatever the plugin's examples are), the ``top_k`` classes, best first.

        A `DataError` names the first item that cannot be read; `classify` reports each instead.
        """
        results = self.classify(items, top_k)
        for item, result in zip(items, results, strict=True):
            if result.error is not None:
                raise DataError(f"cannot predict {str(item)[:200]}: {result.error}")
        return [result.top for result in results]

    def classify(self, items: Sequence[Any], top_k: int = 1, probs: bool = False,
                 progress: ProgressFn | None = None) -> list[Prediction]:
        """A `Prediction` per item, in order; an item that fails to load gets its error and the rest go on."""
        results = [Prediction() for _ in items]
        pre = self.preprocessor
        done = 0
        for start in range(0, len(items), CHUNK):
            index = range(start, min(start + CHUNK, len(items)))
            raws: dict[int, Any] = {}
            with torch_threads(1):  # per-example work: small tensors (automl_tl.threads)
                for i in index:
                    try:
                        raws[i] = pre.load(items[i])
                    except UserError as exc:
                        results[i].error = exc.message
                    except Exception as exc:  # a plugin's decoder may raise anything on a hostile file
                        results[i].error = f"{type(exc).__name__}: {exc}"
            order = list(raws)
            lengths = [pre.length(raws[i]) for i in order]
            for batch in length_batches(lengths, BATCH_SIZE):
                rows = [order[b] for b in batch]
                with torch_threads(1):
                    inputs = pre.collate([pre.transform(raws[i], False) for i in rows])
                p = self.run_network(inputs)
                for row, i in enumerate(rows):
                    results[i] = self._prediction(p[row], top_k, probs)
                done += len(rows)
                if progress is not None:
                    progress(done, len(items))
            done += len(index) - len(order)
        if progress is not None:
            progress(len(items), len(items))
        return results

    def _prediction(self, p: np.ndarray, top_k: int, probs: bool) -> Prediction:
        best = np.argsort(-p, kind="stable")[:top_k]
        top = [{"label": self.source.classes[c], "score": float(p[c])} for c in best]
        return Prediction(top, {c: float(v) for c, v in zip(self.source.classes, p, strict=True)} if probs else None)


def load_model(path: str | Path) -> Model:
    """The model of a run directory (its final model) or of an exported bundle.

    A `UserError` (one line: what is missing or does not match) when it cannot be used. A bundle
    holds its whole network, so only the plugin's preprocessing is built for it, never the backbone.
    """
    source = read_source(Path(path))
    plugin = check_plugin(source)
    options = plugin_options(plugin, source.options)
    builder = backbone_builder(plugin, source.backbone)  # a backbone plugin's backbone is built by that plugin, as in the search
    if source.kind == "run":
        backbone = expect(builder, "build_backbone()", builder.build_backbone(source.backbone, options), Backbone)
        check_preprocessor(source, backbone.preprocessor)
        network = _network(source, backbone)
        return Model(source, plugin, backbone.preprocessor, _torch_runner(network), network, backbone)
    preprocessor = expect(builder, "build_preprocessor()", builder.build_preprocessor(source.backbone, options), Preprocessor)
    check_preprocessor(source, preprocessor)
    if source.kind == "onnx":
        return Model(source, plugin, preprocessor, onnx_runner(source.network))
    return Model(source, plugin, preprocessor, torchscript_runner(source.network, source.inputs))


def _network(source: ModelSource, backbone: Backbone) -> Network:
    try:
        saved = torch.load(source.network, weights_only=True, map_location="cpu")
        states = saved if isinstance(saved, list) else [saved]  # several: fold models, averaged (automl_tl.search.final)
        return Network(backbone, TrialParams(**source.params), len(source.classes), states)
    except (OSError, RuntimeError, TypeError, ValueError, KeyError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"cannot load the model weights {source.network}: {reason}",
                        hint="the run may be damaged, or from another automl-tl version") from None


def _torch_runner(network: torch.nn.Module) -> Runner:
    def run(batch: dict[str, Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return network(batch).float().numpy()

    return run


def onnx_runner(path: Path) -> Runner:
    try:
        import onnxruntime
    except ImportError:
        raise UserError("running an ONNX bundle needs onnxruntime", hint="pip install 'automl-tl[export]'") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"{path} is not a usable ONNX model ({reason})", hint="export the run again") from None
    names = [i.name for i in session.get_inputs()]

    def run(batch: dict[str, Tensor]) -> np.ndarray:
        return session.run(None, {name: batch[name].numpy() for name in names})[0]

    return run


def torchscript_runner(path: Path, names: Sequence[str]) -> Runner:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; ONNX is the default format
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # TorchScript raises RuntimeError and friends for a damaged file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"{path} is not a usable TorchScript model ({reason})", hint="export the run again") from None

    def run(batch: dict[str, Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return module(*(batch[name] for name in names)).float().numpy()

    return run
