"""The default search space and budget, as plain data.

Each dimension has a kind and a default: ``choice`` (a list of values), ``int`` / ``float`` (a
closed range) or ``log`` / ``int_log`` (a range searched on a log scale). A plugin's
``search_space()``, then a recipe's ``[space]`` table, then flags may narrow any of them: a scalar
fixes a dimension, a list of choices or a ``[low, high]`` pair narrows it.
"""

from __future__ import annotations

from typing import Any

STRATEGIES = ("feature_extraction", "partial", "full", "lp_ft")
"""How to transfer: head only on a frozen backbone; first k blocks frozen; nothing frozen;
a linear probe first, then a fine-tune from that head (LP-FT, Kumar et al. 2022) of the whole
backbone or, with k blocks kept frozen, of the rest on their cached output."""

SPACE: dict[str, dict[str, Any]] = {
    "backbone": {"kind": "choice", "default": None},  # None: every available backbone of the plugin
    "strategy": {"kind": "choice", "default": list(STRATEGIES)},
    "freeze_depth": {"kind": "int", "default": None},  # None: 1 .. depth-1 for partial, 0 .. depth-1 for LP-FT
    "backbone_lr": {"kind": "log", "default": [1e-5, 5e-4]},
    "head_lr": {"kind": "log", "default": [3e-4, 3e-2]},
    "weight_decay": {"kind": "log", "default": [1e-6, 1e-1]},
    "epochs": {"kind": "int", "default": [3, 12]},
    "batch_size": {"kind": "choice", "default": [16, 32, 64]},
    "head": {"kind": "choice", "default": ["linear", "mlp"]},
    "head_hidden": {"kind": "int_log", "default": [64, 512]},
    "dropout": {"kind": "float", "default": [0.0, 0.5]},
    "pooling": {"kind": "choice", "default": ["default", "mean", "weighted"]},
    "augment": {"kind": "choice", "default": [False, True]},
    "batchnorm": {"kind": "choice", "default": ["frozen", "adapt"]},
}

ALLOWED_CHOICES: dict[str, tuple[Any, ...]] = {
    "strategy": STRATEGIES,
    "head": ("linear", "mlp"),
    "pooling": ("default", "mean", "weighted"),
    "augment": (False, True),
    "batchnorm": ("frozen", "adapt"),
}
"""Choice dimensions whose values the core must understand (a recipe may only pick among these)."""

BUDGET: dict[str, Any] = {"n_trials": 20, "timeout": None}
"""Default budget when neither plugin, recipe nor flags set one."""
