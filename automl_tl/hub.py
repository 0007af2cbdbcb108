"""Helpers plugins share for Hugging Face hub models: is a model on this machine right now?

Catalogues must answer "available offline?" without a network and without loading weights, so
this only looks for the files in the local hub cache.
"""

from __future__ import annotations

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def cached_offline(repo_id: str) -> bool:
    """Whether the hub model's config and weights are in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False

    def cached(filename: str) -> bool:
        try:
            return isinstance(try_to_load_from_cache(repo_id, filename), str)
        except Exception:  # a malformed id or cache is "not available", never a crash in a listing
            return False

    return cached("config.json") and any(cached(f) for f in WEIGHT_FILES)
