"""Frozen-backbone outputs kept on disk in the run directory, so a resumed run does not recompute them.

An entry is a folder of ``.npy`` arrays plus a ``manifest.json`` naming each array's shape and
dtype. It is written under a temporary name and renamed into place, and checked against its
manifest when read: an entry damaged by a crash, a full disk or a hand edit is removed and
rebuilt, never trusted. Arrays are memory-mapped (copy-on-write), so an entry that fits in RAM
stays in the page cache and one that does not is paged in as trials read it.

Keys hash everything that changes the outputs: the plugin code (distribution, version, source
hash), the backbone's weights, its preprocessing, which examples (in which order), and what was
kept (pooled vectors, or the prefix at depth k).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from automl_tl.contract import Example

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Part of every key: bumping it retires entries written by an older layout."""


def data_fingerprint(examples: Iterable[Example]) -> str:
    """Which examples, in order; a file's size and modification time stand for its content."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(str(example.item).encode("utf-8", "surrogatepass"))
        if isinstance(example.item, Path):
            try:
                stat = example.item.stat()
                digest.update(f"|{stat.st_size}|{stat.st_mtime_ns}".encode())
            except OSError:
                pass  # reading the file fails later, with the loader's own message
        digest.update(b"\0")
    return digest.hexdigest()


def cache_key(*parts: str) -> str:
    return hashlib.sha256("\n".join((f"v{CACHE_VERSION}", *parts)).encode()).hexdigest()[:24]


class DiskCache:
    """A folder of entries, each a set of named arrays."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays (memory-mapped), or None when it is missing or damaged (then removed)."""
        folder = self.root / key
        if not folder.is_dir():
            return None
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            arrays = {}
            for name, spec in manifest["arrays"].items():
                array = np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False)
                if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                    raise ValueError(f"{name}: shape {array.shape} {array.dtype}, manifest says {spec}")
                arrays[name] = array
            return arrays
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cache entry %s is damaged (%s); rebuilding it", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def save(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None) -> bool:
        """Write an entry atomically; False (and a warning) when the disk refuses, e.g. when full.

        A cache that cannot be written costs speed on a later resume, not results: the search goes on.
        """
        folder = self.root / key
        if folder.is_dir():
            return True  # another worker wrote it first; entries with one key are identical
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}.", suffix=".tmp"))
        except OSError as exc:
            log.warning("cannot write the feature cache in %s (%s); going on without it", self.root, exc)
            return False
        try:
            for name, array in arrays.items():
                with open(tmp / f"{name}.npy", "wb") as handle:
                    np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            spec = {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in arrays.items()}
            (tmp / "manifest.json").write_text(json.dumps({"arrays": spec, "meta": dict(meta or {})}))
            os.replace(tmp, folder)
            return True
        except OSError as exc:
            if folder.is_dir():  # lost a race with another worker writing the same entry
                return True
            log.warning("cannot write the feature cache in %s (%s); going on without it", self.root, exc)
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
