"""Which plugin code produced a run: distribution, version and, for code being edited, its source hash.

A version number identifies a plugin's code only when the distribution was installed from a
built wheel. A plugin installed in editable mode (``pip install -e``), or put on ``sys.path`` with
a hand-made ``.dist-info``, changes whenever its author saves a file while the version stays the
same; for those the identity includes a hash of the package's source files. Cache keys and the
run's ``config.json`` carry this identity, so outputs cached by old plugin code are never reused
by new code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass
from importlib.metadata import Distribution, EntryPoint
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


@dataclass(frozen=True)
class Provenance:
    """One plugin's identity as recorded in ``config.json``, the report and cache keys."""

    name: str
    """The entry point's name (``vision``, ``timm``...)."""
    distribution: str
    version: str
    source: str | None = None
    """A hash of the package's source files when the version alone cannot identify the code."""

    def label(self) -> str:
        """``automl-tl-vision 0.1.0`` or, for code being edited, ``automl-tl-vision 0.1.0 (source 1a2b3c4d5e6f)``."""
        return f"{self.distribution} {self.version}" + (f" (source {self.source})" if self.source else "")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def of_entry_point(entry_point: EntryPoint) -> Provenance:
    dist = entry_point.dist
    source = source_hash(entry_point.module) if dist is None or is_editable(dist) else None
    return Provenance(entry_point.name, dist.name if dist else "unknown", dist.version if dist else "?", source)


def is_editable(dist: Distribution) -> bool:
    """True for ``pip install -e`` and for distributions pip did not install (no RECORD of their files)."""
    if dist.read_text("RECORD") is None:
        return True
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(direct.get("dir_info", {}).get("editable"))


def source_hash(module: str) -> str | None:
    """A hash of every ``.py`` file of ``module``'s top-level package (or of the module's one file)."""
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        roots = [Path(location) for location in spec.submodule_search_locations]
        files = sorted((root, path) for root in roots for path in root.rglob("*.py"))
    elif spec.origin and spec.origin.endswith(".py"):
        files = [(Path(spec.origin).parent, Path(spec.origin))]
    else:
        return None
    digest = hashlib.sha256()
    for root, path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def file_digest(path: Path) -> str:
    """The hash of a file's bytes: what a backbone's fingerprint should carry for a local weights file.

    A path and a size do not identify weights: new weights saved over old ones keep both.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]
