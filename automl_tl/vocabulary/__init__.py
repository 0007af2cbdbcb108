"""The search vocabulary: every word a search, a recipe, a leaderboard and a report use, declared once.

A *dimension* is one thing the search decides per trial (the strategy, the head's learning rate,
the pooling...). Each is declared in `DIMENSIONS` with its kind, its default range or choices,
what a recipe may set it to, when it is *active* (a predicate over the dimensions before it and
the backbone's shape), and its leaderboard column. Strategies and poolings are records in
`STRATEGIES` and `POOLINGS` that say what each one means to the engine (does the backbone train?
which freeze depths? does it run on the cached prefix? what does its pooling read?) and how the
leaderboard and the plots show it.

Config validation, `SearchSpace.sample` and `SearchSpace.params_of`, `TrialParams`, the leaderboard
columns, the live progress lines and the report's plots all read these tables, so adding a word
is a change here (and, for a pooling that learns weights, its layer in `layers.py`), plus tests.

Torch-free: the CLI validates a recipe and renders a leaderboard without loading a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from automl_tl.vocabulary.adaptations import ADAPTATIONS, SOURCE_ONLY, Adaptation, describe_adaptation, uses

Values = Mapping[str, Any]
"""A trial's values so far, by dimension name (the dimensions declared before the one asked about)."""


@dataclass(frozen=True)
class BackboneShape:
    """What the sampler must know of a backbone to keep a trial's configuration valid."""

    depth: int
    uniform_width: bool
    has_batchnorm: bool
    target: bool = False
    """The search has an unlabelled target domain: only then is an adaptation method sampled."""


@dataclass(frozen=True)
class Strategy:
    """How to transfer: which blocks stay frozen, and what the engine does with that."""

    name: str
    short: str
    """Its name in leaderboard cells and progress lines (``lp ft``)."""
    label: str
    """Its name in the report's legends (``LP-FT``)."""
    colour: str
    """Okabe–Ito colour of its markers: distinct for colour-blind readers."""
    marker: str
    """Matplotlib marker: distinct in grey-scale print."""
    freezes: Literal["all", "none", "some", "some_or_none"]
    """Blocks frozen: every one (depth), none (0), 1 .. depth-1, or 0 .. depth-1."""
    probe_first: bool = False
    """Train a linear probe on the frozen features first, then fine-tune from that head."""
    depth_param: str | None = None
    """Optuna's name for its freeze depth where it samples one (strategies draw from different ranges)."""
    doc: str = ""

    @property
    def trains_backbone(self) -> bool:
        return self.freezes != "all"

    @property
    def cached(self) -> bool:
        """Whether its trials read frozen outputs from the feature store (all but full fine-tuning)."""
        return self.freezes != "none"

    @property
    def min_depth(self) -> int:
        """Blocks a backbone needs for this strategy: freezing some but not all needs two."""
        return 2 if self.freezes == "some" else 1

    def freeze_depths(self, depth: int, narrowed: list[int] | None = None) -> list[int]:
        """Freeze depths a trial of this strategy on a ``depth``-block backbone may use, lowest first.

        ``narrowed`` is the recipe's ``freeze_depth`` range, clamped into 1 .. depth-1 so that one
        recipe may serve backbones of different depths.
        """
        if self.freezes == "all":
            return [depth]
        if self.freezes == "none":
            return [0]
        if depth < 2:  # no block can stay frozen short of all: only the classic form is left
            return [] if self.freezes == "some" else [0]
        low, high = narrowed or [1, depth - 1]
        low, high = min(max(1, int(low)), depth - 1), min(depth - 1, int(high))
        high = max(low, high)
        return list(range(low if self.freezes == "some" else 0, high + 1))

    def describe(self, freeze_depth: int | None) -> str:
        """``partial k=2``, ``lp ft k=1``: the freeze depth where the strategy leaves it open."""
        shown = self.freezes == "some" or (self.freezes == "some_or_none" and freeze_depth)
        return f"{self.short} k={freeze_depth}" if shown else self.short


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("feature_extraction", "feature extraction", "feature extraction", "#0072B2", "o", "all",
             doc="A head on the frozen backbone's features."),
    Strategy("partial", "partial", "partial fine-tune", "#E69F00", "s", "some", depth_param="freeze_depth",
             doc="The first k blocks frozen (their output cached), the rest fine-tuned."),
    Strategy("full", "full", "full fine-tune", "#009E73", "^", "none", doc="Nothing frozen."),
    Strategy("lp_ft", "lp ft", "LP-FT", "#CC79A7", "D", "some_or_none", probe_first=True,
             depth_param="freeze_depth[lp_ft]",
             doc="A linear probe first, then a fine-tune from that head (Kumar et al. 2022) of the whole "
                 "backbone or, with k blocks kept frozen, of the rest on their cached output."),
)}
"""How to transfer, in the order the report lists them."""

OTHER_STYLE = ("#777777", "X", "other")
"""Colour, marker and label of a strategy a newer or older version wrote that this one does not know."""


@dataclass(frozen=True)
class Pooling:
    """How the head's input vector is made from the blocks' outputs."""

    name: str
    label: str
    reads: Literal["own", "mean", "blocks", "sequence"]
    """What it pools: the backbone's own pooling of the last block; the mean of the last block;
    every block's mean (it then needs blocks of one width); or the last block's whole sequence
    (a frozen backbone then caches that sequence instead of a vector)."""
    layer: str | None = None
    """The learned layer it trains (a name in `automl_tl.vocabulary.layers.LAYERS`), if any."""
    doc: str = ""

    def available(self, shape: BackboneShape) -> bool:
        return self.reads != "blocks" or shape.uniform_width


POOLINGS: dict[str, Pooling] = {p.name: p for p in (
    Pooling("default", "the backbone's own", "own", doc="What the backbone's authors pool with (a CLS token, a mean...)."),
    Pooling("mean", "mean", "mean", doc="The mean over the last block's real positions."),
    Pooling("weighted", "weighted blocks", "blocks", layer="weighted",
            doc="A learned softmax-weighted sum of every block's mean: lower blocks often transfer better."),
    Pooling("attention", "attention", "sequence", layer="attention",
            doc="A learned query attending over the last block's positions, as in wav2vec2 / Whisper "
                "downstream heads: it can weigh the frames or tokens that carry the class."),
)}
"""How to pool; `POOLINGS["default"]` is the fallback when a backbone allows no other."""


def _always(values: Values, shape: BackboneShape) -> bool:
    return True


def trains_backbone(values: Values) -> bool:
    """Whether a configuration's strategy trains backbone blocks (false for frozen features, or no strategy)."""
    return values.get("strategy") in STRATEGIES and STRATEGIES[values["strategy"]].trains_backbone


def _trains_backbone(values: Values, shape: BackboneShape) -> bool:
    return trains_backbone(values)


def _mlp(values: Values, shape: BackboneShape) -> bool:
    return values.get("head") == "mlp"


def _trains_stem(values: Values, shape: BackboneShape) -> bool:
    """Nothing frozen, so the stem trains and augmenting the input can change what it learns
    (false while a configuration leaves the freeze depth to the sampler)."""
    return values.get("freeze_depth") == 0


def _batchnorm(values: Values, shape: BackboneShape) -> bool:
    return shape.has_batchnorm and _trains_backbone(values, shape)


def _adapting(values: Values, shape: BackboneShape) -> bool:
    return shape.target


def _tunes(dimension: str) -> Callable[[Values, BackboneShape], bool]:
    """Active when the trial's adaptation method is tuned by ``dimension`` (`Adaptation.dimensions`)."""
    return lambda values, shape: shape.target and uses(dimension, values)


def describe_strategy(params: Values) -> str:
    """A trial's strategy with its freeze depth where that was chosen (``partial k=2``)."""
    name = params.get("strategy")
    if name not in STRATEGIES:
        return str(name or "").replace("_", " ")
    return STRATEGIES[name].describe(params.get("freeze_depth"))


def describe_head(params: Values) -> str:
    """``linear``, or ``mlp 256 d0.10`` for an MLP head with its width and dropout."""
    if params.get("head") == "mlp":
        return f"mlp {params.get('head_hidden')} d{params.get('dropout') or 0:.2f}"
    return str(params.get("head") or "")


def _strategy_cell(params: Values) -> str:
    name = params.get("strategy")
    return STRATEGIES[name].short if name in STRATEGIES else str(name or "")


@dataclass(frozen=True)
class Dimension:
    """One search dimension. ``kind``: ``choice`` (a list of values), ``int`` / ``float`` (a closed
    range) or ``log`` / ``int_log`` (a range searched on a log scale)."""

    name: str
    kind: Literal["choice", "int", "float", "log", "int_log"]
    default: Any
    """Choices or ``[low, high]``; None where the engine fills it in (every available backbone,
    each strategy's own freeze depths)."""
    active: Callable[[Values, BackboneShape], bool] = _always
    """Whether a trial samples it, given the dimensions declared before it; else it takes ``inactive``."""
    inactive: Any = None
    allowed: tuple[Any, ...] | None = None
    """The values a recipe may choose among (None: any value of the kind, e.g. a backbone name)."""
    low: float | None = None
    high: float | None = None
    """Where a number makes sense, inclusive; log-scale ranges need only be positive."""
    high_open: bool = False
    """``high`` itself is excluded (a dropout of 1 drops everything)."""
    column: str | None = None
    """Its leaderboard column, if it has one."""
    fmt: str = ""
    """Format of its value in a leaderboard cell."""
    show: Callable[[Values], str] | None = None
    """Its leaderboard cell from a trial's whole configuration, where the value alone says too little."""
    doc: str = ""

    @property
    def numeric(self) -> bool:
        """Its values are numbers (a choice among numbers declares its bounds, like ``batch_size``)."""
        return self.kind != "choice" or self.low is not None

    @property
    def whole(self) -> bool:
        return self.kind in ("int", "int_log") or (self.kind == "choice" and self.numeric)


DIMENSIONS: dict[str, Dimension] = {d.name: d for d in (
    # Declared in sampling order: a predicate reads only dimensions above it, and the order of
    # Optuna's draws (hence a seeded search's configurations) follows this table.
    Dimension("backbone", "choice", None, column="backbone", doc="Every backbone available offline, default first."),
    Dimension("strategy", "choice", list(STRATEGIES), allowed=tuple(STRATEGIES), column="strategy",
              show=_strategy_cell),
    Dimension("freeze_depth", "int", None, low=0, column="freeze depth",
              doc="Blocks kept frozen; a range narrows partial (1 .. depth-1) and LP-FT (0 .. depth-1)."),
    Dimension("head", "choice", ["linear", "mlp"], allowed=("linear", "mlp"), column="head", show=describe_head),
    Dimension("head_lr", "log", [3e-4, 3e-2], column="head lr", fmt=".1e"),
    Dimension("weight_decay", "log", [1e-6, 1e-1]),
    Dimension("epochs", "int", [3, 12], low=1, high=1000),
    Dimension("batch_size", "choice", [16, 32, 64], low=1, high=4096),
    Dimension("pooling", "choice", list(POOLINGS), allowed=tuple(POOLINGS), column="pooling"),
    Dimension("backbone_lr", "log", [1e-5, 5e-4], active=_trains_backbone, column="backbone lr", fmt=".1e"),
    Dimension("head_hidden", "int_log", [64, 512], active=_mlp, low=1, high=65536),
    Dimension("dropout", "float", [0.0, 0.5], active=_mlp, low=0, high=1, high_open=True),
    Dimension("augment", "choice", [False, True], active=_trains_stem, inactive=False, allowed=(False, True)),
    Dimension("batchnorm", "choice", ["frozen", "adapt"], active=_batchnorm, allowed=("frozen", "adapt"),
              doc="BatchNorm statistics frozen or adapting, for backbones that have BatchNorm."),
    # Last, so a search without a target draws what it drew before they existed.
    Dimension("adaptation", "choice", list(ADAPTATIONS), active=_adapting, inactive=SOURCE_ONLY,
              allowed=tuple(ADAPTATIONS), doc="How to adapt to the unlabelled target (only with a target)."),
    Dimension("adaptation_weight", "log", [0.03, 3.0], active=_tunes("adaptation_weight"),
              doc="The adaptation loss's weight beside the source's cross-entropy (DANN: its ramp's end)."),
    Dimension("pseudo_threshold", "float", [0.5, 0.95], active=_tunes("pseudo_threshold"), low=0, high=1,
              high_open=True, doc="Confidence a target prediction needs to become a pseudo-label."),
)}


LINEAR_PROBE: dict[str, Any] = {"strategy": "feature_extraction", "head": "linear", "pooling": "default",
                                "adaptation": SOURCE_ONLY}
"""The baseline every fresh search runs first: a linear head on the frozen backbone's own pooling, source only."""


@dataclass(frozen=True)
class TrialParams:
    """One trial's configuration: a value for every dimension (the ``inactive`` one where it was not sampled)."""

    backbone: str
    strategy: str
    freeze_depth: int
    """Blocks frozen: all of them for feature extraction, none for full fine-tuning."""
    head: str
    head_lr: float
    weight_decay: float
    epochs: int
    batch_size: int
    pooling: str
    backbone_lr: float | None = None
    head_hidden: int | None = None
    dropout: float | None = None
    augment: bool = False
    batchnorm: str | None = None
    adaptation: str = SOURCE_ONLY
    adaptation_weight: float | None = None
    pseudo_threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def transfer(self) -> Strategy:
        return STRATEGIES[self.strategy]

    @property
    def pool(self) -> Pooling:
        return POOLINGS[self.pooling]

    @property
    def adapting(self) -> Adaptation:
        return ADAPTATIONS[self.adaptation]


def strategy_style(name: str | None) -> tuple[str, str, str]:
    """Colour, marker and legend label of a strategy (`OTHER_STYLE` for one this version does not know)."""
    strategy = STRATEGIES.get(name or "")
    return (strategy.colour, strategy.marker, strategy.label) if strategy else OTHER_STYLE


def describe(params: Values) -> str:
    """A trial's configuration in a few words, for progress lines and the report."""
    head = "mlp" + str(params.get("head_hidden")) if params.get("head") == "mlp" else params.get("head")
    adapted = f" · {describe_adaptation(params)}" if params.get("adaptation", SOURCE_ONLY) != SOURCE_ONLY else ""
    return f"{params.get('backbone')} · {describe_strategy(params)} · {head} · {params.get('pooling')} · {params.get('epochs')} ep{adapted}"


def cell(dimension: Dimension, params: Values) -> str:
    """A dimension's leaderboard cell for one trial's parameters ("" where the trial did not use it)."""
    value = params.get(dimension.name)
    if value is None:
        return ""
    if dimension.show is not None:
        return dimension.show(params)
    return format(value, dimension.fmt) if dimension.fmt else str(value)


def columns() -> list[Dimension]:
    """The dimensions the leaderboard shows, in table order."""
    return [d for d in DIMENSIONS.values() if d.column]
