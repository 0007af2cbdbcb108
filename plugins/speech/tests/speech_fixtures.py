"""Audio fixtures made on the fly: tones whose pitch is the class, written as real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

PITCHES = {"low": 220.0, "high": 880.0}


def tone(path: Path, label: str, seconds: float = 0.4, rate: int = 8000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * PITCHES[label] * t) + 0.02 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave.astype(np.float32), rate, subtype="PCM_16")
    return path


def fsdd_folder(root: Path, speakers: tuple[str, ...] = ("ann", "bob", "cat", "dan"), per_class: int = 3) -> Path:
    """FSDD-style names, {label}_{speaker}_{index}.wav, under root/recordings."""
    for s, speaker in enumerate(speakers):
        for label in PITCHES:
            for i in range(per_class):
                tone(root / "recordings" / f"{label}_{speaker}_{i}.wav", label, seconds=0.3 + 0.05 * i, seed=s * 100 + i)
    return root
