"""Offline demo data: the spoken digits "zero".."nine", synthesised locally with eSpeak NG.

When the Free Spoken Digit Dataset (FSDD) is not on the machine and there is no network, the speech
demo still needs *some* labelled audio. `synthesize_digits` makes it: every digit spoken by many
eSpeak NG voices (8 English accents x voice variants, male, female and Klatt), at random speeds,
pitches and intonations, then trimmed, resampled, padded with random silence, mixed with white or
pink noise at a random SNR and scaled to a random level. Files are named like FSDD's
(``recordings/{digit}_{speaker}_{index}.wav``), with the voice as the speaker, so the FSDD loader
reads it and group splits hold whole voices out.

Two backends, tried in this order:

* ``library``: libespeak-ng and its data as bundled by the ``espeakng-loader`` wheel, driven through
  a small ctypes binding (`_Espeak`). eSpeak keeps synthesis state in C globals that are never
  reset (e.g. a pitch-flutter phase), so an utterance depends on everything spoken before it in
  the process. To make a dataset a pure function of its seed, the synthesis runs in a fresh child
  interpreter (this file run as a script) that initialises the library once and renders the
  whole job list in a fixed order; a crash inside the C library also cannot take the caller down.
* ``cli``: the ``espeak-ng`` command (Debian package ``espeak-ng``), one process per utterance
  (fresh state each time), run in parallel. It has no pitch-range option and no random seed.

Post-processing (numpy only) runs in the calling process.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["DIGITS", "VOICES", "available", "default_backend", "speaker_id", "synthesize_digits"]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

VOICES: tuple[str, ...] = (
    # eSpeak voice names: "<accent>[+<variant>]". Accents are the English language files under
    # espeak-ng-data/lang/gmw (en-Shaw, the Shavian alphabet, is left out); variants are files under
    # espeak-ng-data/voices/!v (m* male, f* female, klatt* the Klatt synthesiser, named community
    # voices). Any not present in the installed data are skipped.
    "en",
    "en-us+m3",
    "en-us+f2",
    "en-gb-scotland+m1",
    "en-gb-scotland+f4",
    "en-gb-x-rp+m7",
    "en-gb-x-rp+f1",
    "en-029+m2",
    "en-029+f3",
    "en-gb-x-gbclan+m6",
    "en-gb-x-gbclan+f5",
    "en-gb-x-gbcwmd+m4",
    "en-gb-x-gbcwmd+Annie",
    "en-us-nyc+klatt4",
    "en-us-nyc+belinda",
    "en+grandma",
    "en-us+Andy",
    "en-029+klatt6",
)

# What is drawn per recording (uniformly, bounds inclusive for integers).
RATE_WPM = (120, 220)  # espeakRATE, words per minute (eSpeak's default is 175)
PITCH = (20, 80)  # espeakPITCH, 0-100 around the voice's own base pitch (default 50)
PITCH_RANGE = (20, 80)  # espeakRANGE, 0 monotone .. 100 (default 50); library backend only
ENDINGS = (".", ",", "!")  # statement, continuation and exclamation intonation
SNR_DB = (10.0, 30.0)
PEAK_DBFS = (-18.0, -1.0)  # random gain: final peak level
SILENCE_S = (0.05, 0.35)  # silence added before and after the trimmed word (noise covers it too)
PINK_NOISE_P = 0.5

Backend = Literal["library", "cli"]


# ---------------------------------------------------------------------------------------------
# Minimal ctypes binding to libespeak-ng (declarations from espeak-ng's speak_lib.h / espeak_ng.h)
# ---------------------------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: render inside espeak_Synth, give samples to our callback
_INITIALIZE_DONT_EXIT = 0x8000  # on bad data return an error instead of calling exit()
_POS_CHARACTER = 1  # espeak_POSITION_TYPE
_CHARS_UTF8 = 1  # espeak_Synth flags: the text is UTF-8
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4  # espeak_PARAMETER
_EE_OK = 0  # espeak_ERROR

# int t_espeak_callback(short *wav, int numsamples, espeak_EVENT *events): return 0 to go on,
# 1 to abort. The event list is not needed, so it stays an opaque pointer.
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _VoiceInfo(ctypes.Structure):
    """espeak_VOICE, read back after selecting a voice to check the variant was really applied."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _Espeak:
    """libespeak-ng in this process: initialised once (`get`); calls are serialised (its state is global)."""

    _instance: _Espeak | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls, library: str, data: str) -> _Espeak:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls(library, data)
            return cls._instance

    def __init__(self, library: str, data: str) -> None:
        lib = ctypes.CDLL(library)
        c = ctypes
        lib.espeak_Initialize.argtypes = [c.c_int, c.c_int, c.c_char_p, c.c_int]
        lib.espeak_Initialize.restype = c.c_int  # the sample rate, or -1
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [c.c_char_p]
        lib.espeak_SetVoiceByName.restype = c.c_int
        lib.espeak_GetCurrentVoice.argtypes = []
        lib.espeak_GetCurrentVoice.restype = c.POINTER(_VoiceInfo)
        lib.espeak_SetParameter.argtypes = [c.c_int, c.c_int, c.c_int]  # parameter, value, relative
        lib.espeak_SetParameter.restype = c.c_int
        # text, size, position, position_type, end_position, flags, *unique_identifier, user_data
        lib.espeak_Synth.argtypes = [c.c_void_p, c.c_size_t, c.c_uint, c.c_int, c.c_uint, c.c_uint, c.c_void_p, c.c_void_p]
        lib.espeak_Synth.restype = c.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = c.c_int
        lib.espeak_Info.argtypes = [c.c_void_p]
        lib.espeak_Info.restype = c.c_char_p
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)  # espeak-ng >= 1.52 only
        if self._set_seed is not None:
            self._set_seed.argtypes = [c.c_long]
            self._set_seed.restype = c.c_int

        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (library {library}, data {data})")
        self.version = (lib.espeak_Info(None) or b"?").decode()
        self._lib = lib
        self._chunks: list[bytes] = []
        self._callback_error: BaseException | None = None
        # ctypes does not keep the function pointer alive and libespeak-ng calls it on every synthesis:
        # the reference stays on this object, which the class keeps for the life of the process.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n: int, _events) -> int:
        try:
            if n > 0 and wav:
                self._chunks.append(ctypes.string_at(wav, n * ctypes.sizeof(ctypes.c_short)))
            return 0
        except BaseException as e:  # never let an exception unwind through C
            self._callback_error = e
            return 1

    def speak(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int) -> np.ndarray:
        """``text`` as mono int16 samples at `sample_rate`."""
        with self._lock:
            lib = self._lib
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise RuntimeError(f"eSpeak NG has no voice {voice!r}")
            if "+" in voice:  # an unknown variant is silently ignored: check it was applied
                ident = (lib.espeak_GetCurrentVoice().contents.identifier or b"").decode()
                if not ident.lower().endswith("+" + voice.split("+", 1)[1].lower()):
                    raise RuntimeError(f"eSpeak NG has no voice variant {voice!r} (got {ident!r})")
            for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range)):
                lib.espeak_SetParameter(param, int(value), 0)
            if self._set_seed is not None:  # seeds eSpeak's own generator (breath/aspiration noise)
                self._set_seed(int(seed))
            self._chunks, self._callback_error = [], None
            buf = text.encode() + b"\0"
            err = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err == _EE_OK:
                err = lib.espeak_Synchronize()  # a no-op in synchronous mode; cheap insurance
            if self._callback_error is not None:
                raise RuntimeError("eSpeak NG audio callback failed") from self._callback_error
            if err != _EE_OK:
                raise RuntimeError(f"espeak_Synth failed with error {err} for {text!r} in voice {voice!r}")
            return np.frombuffer(b"".join(self._chunks), dtype=np.int16).copy()


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    voice: str
    text: str
    rate: int
    pitch: int
    pitch_range: int
    seed: int


@lru_cache(maxsize=1)
def _bundled() -> tuple[str, str] | None:
    """(library, data dir) from the espeakng-loader wheel, if it is installed and loadable."""
    try:
        import espeakng_loader

        library, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        if not (Path(library).is_file() and Path(data, "phontab").is_file()):
            return None
        ctypes.CDLL(library)  # dlopen only (no initialisation): catches a missing libstdc++ etc.
        return library, data
    except Exception:
        return None


@lru_cache(maxsize=1)
def _cli() -> str | None:
    return shutil.which("espeak-ng")


def default_backend() -> Backend | None:
    """The backend `synthesize_digits` uses by default, or None when eSpeak NG is not available."""
    if _bundled() is not None:
        return "library"
    if _cli() is not None:
        return "cli"
    return None


def available() -> bool:
    """True when spoken digits can be synthesised here (checks files and ``PATH``; synthesises nothing)."""
    return default_backend() is not None


def _installed_voices(which: Backend) -> set[str]:
    """The names in `VOICES` that the installed eSpeak NG data really has."""
    if which == "library":
        data = Path(_bundled()[1])  # type: ignore[index]
        accents = {p.name.lower() for p in (data / "lang").rglob("*") if p.is_file()}
        variants = {p.name for p in (data / "voices" / "!v").iterdir()}
    else:
        run = lambda *a: subprocess.run([_cli(), *a], capture_output=True, text=True, timeout=60).stdout  # noqa: E731
        # columns "Pty Language Age/Gender VoiceName File Other-languages", e.g. "gmw/en-US", "!v/m3"
        rows = [ln.split() for ln in run("--voices").splitlines()[1:]]
        accents = {r[1].lower() for r in rows if len(r) > 4} | {r[4].rsplit("/", 1)[-1].lower() for r in rows if len(r) > 4}
        rows = [ln.split() for ln in run("--voices=variant").splitlines()[1:]]
        variants = {r[4].rsplit("/", 1)[-1] for r in rows if len(r) > 4}
    keep = []
    for voice in VOICES:
        accent, _, variant = voice.partition("+")
        if accent.lower() in accents and (not variant or variant in variants):
            keep.append(voice)
    return set(keep)


def _render_library(jobs: Sequence[_Job]) -> tuple[int, str, list[np.ndarray]]:
    """Synthesise ``jobs`` in order in a fresh interpreter (see the module docstring for why)."""
    library, data = _bundled()  # type: ignore[misc]
    with tempfile.TemporaryDirectory(prefix="automl-tl-espeak-") as tmp:
        out = Path(tmp) / "audio.bin"
        request = {"library": library, "data": data, "out": str(out), "jobs": [j.__dict__ for j in jobs]}
        # -P: do not put this package's folder on sys.path (its module names must not shadow others)
        proc = subprocess.run(
            [sys.executable, "-P", str(Path(__file__).resolve()), "--espeak-worker"],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=max(120, 2 * len(jobs)),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"eSpeak NG worker failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
        blob = out.read_bytes()
    sample_rate, vlen = struct.unpack_from("<II", blob, 0)
    pos = 8 + vlen
    version = blob[8:pos].decode()
    audio = []
    for _ in jobs:
        (n,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        audio.append(np.frombuffer(blob, dtype="<i2", count=n, offset=pos).astype(np.int16))
        pos += 2 * n
    return sample_rate, version, audio


def _worker_main() -> None:
    """Child side of `_render_library`: read a JSON request on stdin, write the audio file it names."""
    request = json.load(sys.stdin)
    engine = _Espeak.get(request["library"], request["data"])
    version = engine.version.encode()
    with open(request["out"], "wb") as f:
        f.write(struct.pack("<II", engine.sample_rate, len(version)) + version)
        for job in request["jobs"]:
            samples = engine.speak(**job).astype("<i2")
            f.write(struct.pack("<I", len(samples)) + samples.tobytes())


def _render_cli(jobs: Sequence[_Job]) -> tuple[int, str, list[np.ndarray]]:
    import soundfile as sf

    exe = _cli()
    assert exe is not None
    version_line = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", version_line)
    version = match.group(1) if match else "?"
    with tempfile.TemporaryDirectory(prefix="automl-tl-espeak-") as tmp:

        def one(k: int) -> tuple[np.ndarray, int]:
            job, path = jobs[k], Path(tmp) / f"{k}.wav"
            cmd = [exe, "-v", job.voice, "-s", str(job.rate), "-p", str(min(job.pitch, 99)), "-w", str(path), job.text]
            for attempt in range(3):  # a stalled run is retried: each run is fresh, so the result is the same
                try:
                    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
                    break
                except subprocess.TimeoutExpired:
                    if attempt == 2:
                        raise
            if proc.returncode != 0 or not path.is_file():
                raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')[-500:]}")
            audio, sr = sf.read(path, dtype="int16", always_2d=True)
            return audio[:, 0].copy(), sr

        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            results = list(pool.map(one, range(len(jobs))))
    rates = {sr for _, sr in results}
    if len(rates) > 1:
        raise RuntimeError(f"espeak-ng wrote several sample rates: {sorted(rates)}")
    return (rates.pop() if rates else 22050), version, [a for a, _ in results]


# ---------------------------------------------------------------------------------------------
# Post-processing
# ---------------------------------------------------------------------------------------------


def _resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling by FFT: exact here because eSpeak's output starts and ends in silence.

    (torchaudio's sinc resampler takes ~20 ms a clip for 22050 -> 16000 Hz, most of the run.)
    """
    if src == dst or len(x) == 0:
        return x
    g = math.gcd(src, dst)
    up, down = dst // g, src // g
    n_in = -(-len(x) // down) * down  # zero-pad so the output length is a whole number of samples
    n_out = n_in // down * up
    spec = np.fft.rfft(x, n_in)  # bin k is k * src / n_in Hz in both spectra
    out = np.zeros(n_out // 2 + 1, dtype=spec.dtype)
    keep = min(len(spec), len(out))
    out[:keep] = spec[:keep]
    y = np.fft.irfft(out, n_out) * (n_out / n_in)
    return y[: round(len(x) * up / down)].astype(np.float32)


def _trim(x: np.ndarray, sample_rate: int, floor_db: float = -40.0, margin_s: float = 0.01) -> np.ndarray:
    """Cut eSpeak's own leading and trailing silence (below ``floor_db`` of the peak)."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak == 0.0:
        return x
    loud = np.flatnonzero(np.abs(x) > peak * 10 ** (floor_db / 20))
    margin = int(margin_s * sample_rate)
    return x[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


def _noise(rng: np.random.Generator, n: int, pink: bool) -> np.ndarray:
    """Unit-RMS white or pink (1/f power) noise."""
    white = rng.standard_normal(n)
    if pink and n > 2:
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=float)
        f[0] = 1.0
        spec /= np.sqrt(f)
        spec[0] = 0.0
        white = np.fft.irfft(spec, n)
    rms = float(np.sqrt(np.mean(white**2))) or 1.0
    return white / rms


@dataclass(frozen=True)
class _Take:
    digit: int
    speaker: str
    index: int
    job: _Job
    snr_db: float
    pink: bool
    peak_dbfs: float
    lead_s: float
    trail_s: float
    noise_seed: int

    @property
    def filename(self) -> str:
        return f"{self.digit}_{self.speaker}_{self.index}.wav"


def speaker_id(voice: str) -> str:
    """The FSDD "speaker" for an eSpeak voice name: lower-case letters and digits only ("en-us+m3" -> "enusm3")."""
    return re.sub(r"[^a-z0-9]", "", voice.lower())


def _plan(voices: Sequence[str], per_class: int, seed: int) -> list[_Take]:
    """Every recording's settings; a pure function of its arguments."""
    order = [voices[k] for k in np.random.default_rng([seed, 0x5EED]).permutation(len(voices))]
    takes: list[_Take] = []
    for digit, word in enumerate(DIGITS):
        counts: dict[str, int] = {}
        for i in range(per_class):
            voice = order[(digit * per_class + i) % len(order)]  # round robin: voices share digits evenly
            index = counts.get(voice, 0)
            counts[voice] = index + 1
            rng = np.random.default_rng([seed, digit, i])
            job = _Job(
                voice=voice,
                text=word + str(rng.choice(ENDINGS)),
                rate=int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
                pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
                pitch_range=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                seed=int(rng.integers(1, 2**31 - 1)),
            )
            takes.append(
                _Take(
                    digit=digit,
                    speaker=speaker_id(voice),
                    index=index,
                    job=job,
                    snr_db=float(rng.uniform(*SNR_DB)),
                    pink=bool(rng.random() < PINK_NOISE_P),
                    peak_dbfs=float(rng.uniform(*PEAK_DBFS)),
                    lead_s=float(rng.uniform(*SILENCE_S)),
                    trail_s=float(rng.uniform(*SILENCE_S)),
                    noise_seed=int(rng.integers(0, 2**63 - 1)),
                )
            )
    return takes


def _finish(raw: np.ndarray, take: _Take, espeak_rate: int, sample_rate: int) -> np.ndarray:
    """eSpeak's int16 output -> the int16 recording that is written."""
    speech = _trim(_resample(raw.astype(np.float32) / 32768.0, espeak_rate, sample_rate), sample_rate)
    if len(speech) == 0 or not np.any(speech):
        raise RuntimeError(f"eSpeak NG produced silence for {take.job}")
    power = float(np.mean(speech.astype(np.float64) ** 2))
    lead, trail = int(take.lead_s * sample_rate), int(take.trail_s * sample_rate)
    clip = np.concatenate([np.zeros(lead), speech.astype(np.float64), np.zeros(trail)])
    rng = np.random.default_rng(take.noise_seed)
    clip += _noise(rng, len(clip), take.pink) * np.sqrt(power / 10 ** (take.snr_db / 10))
    clip *= 10 ** (take.peak_dbfs / 20) / np.max(np.abs(clip))
    return np.clip(np.round(clip * 32767), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def synthesize_digits(
    out_dir: Path,
    per_class: int = 60,
    seed: int = 0,
    sample_rate: int = 16000,
    progress: Callable[[int, int], None] | None = None,
    *,
    backend: Backend | None = None,
) -> Path:
    """Write a synthetic FSDD-style spoken-digit dataset to ``out_dir`` and return ``out_dir``.

    ``out_dir/recordings/{digit}_{speaker}_{index}.wav`` (mono 16-bit PCM at ``sample_rate``;
    the speaker is the eSpeak voice, see `speaker_id`) and ``out_dir/README.txt``. The same
    arguments give the same bytes (on the same eSpeak NG version and backend). ``progress(done,
    total)`` is called as recordings are written. The dataset is built in a hidden folder next to
    ``out_dir`` and renamed into place at the end, so ``out_dir`` never holds a partial dataset.
    Raises `FileExistsError` if ``out_dir`` exists and is not empty, `RuntimeError` if eSpeak NG is
    missing or fails.
    """
    out_dir = Path(out_dir)
    which = backend or default_backend()
    if which is None:
        raise RuntimeError(
            "eSpeak NG is not available: install the espeakng-loader wheel or the espeak-ng package"
        )
    if (which == "library" and _bundled() is None) or (which == "cli" and _cli() is None):
        raise RuntimeError(f"the eSpeak NG {which!r} backend is not available here")
    if per_class < 1 or seed < 0 or sample_rate < 4000:
        raise ValueError("need per_class >= 1, seed >= 0 and sample_rate >= 4000")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty; remove it to synthesise again")

    installed = _installed_voices(which)
    voices = [v for v in VOICES if v in installed]
    if len(voices) < 2:
        raise RuntimeError(f"the installed eSpeak NG data has too few of the voices {VOICES}")
    takes = _plan(voices, per_class, seed)
    total = len(takes)
    if progress is not None:
        progress(0, total)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()  # (not tempfile.mkdtemp: its 0700 mode would stick to the finished dataset)
    try:
        render = _render_library if which == "library" else _render_cli
        espeak_rate, version, raws = render([t.job for t in takes])
        import soundfile as sf

        recordings = staging / "recordings"
        recordings.mkdir()
        for done, (take, raw) in enumerate(zip(takes, raws, strict=True), start=1):
            sf.write(recordings / take.filename, _finish(raw, take, espeak_rate, sample_rate), sample_rate, subtype="PCM_16")
            if progress is not None:
                progress(done, total)
        (staging / "README.txt").write_text(_readme(voices, per_class, seed, sample_rate, which, version, total))
        try:
            os.rename(staging, out_dir)  # atomic; replaces out_dir only if it is an empty folder
        except OSError:
            if (out_dir / "README.txt").is_file():  # another process finished the same dataset first
                shutil.rmtree(staging, ignore_errors=True)
                return out_dir
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _readme(voices: Sequence[str], per_class: int, seed: int, sample_rate: int, which: str, version: str, total: int) -> str:
    voice_lines = "\n".join(f"  {speaker_id(v):<20} eSpeak voice {v}" for v in voices)
    return f"""Synthetic spoken digits (offline stand-in for the Free Spoken Digit Dataset)
==========================================================================

Made by automl_tl_speech.synth.synthesize_digits(per_class={per_class}, seed={seed}, sample_rate={sample_rate})
with eSpeak NG {version} ({which} backend). Nothing here was recorded from a person: expect
robotic formant speech, which is much easier and much less varied than real voices. Use it to
check that the pipeline runs, not to judge models.

Layout: recordings/{{digit}}_{{speaker}}_{{index}}.wav, as in FSDD; {total} files, {per_class} per digit,
mono 16-bit PCM at {sample_rate} Hz. The "speaker" is the eSpeak voice (accent + voice variant),
so splits by speaker hold whole voices out.

Per recording, drawn at random (deterministic given the seed):
  word         "zero".."nine" ending in one of {" ".join(repr(e) for e in ENDINGS)} (changes the intonation)
  speed        {RATE_WPM[0]}-{RATE_WPM[1]} words per minute
  pitch        {PITCH[0]}-{PITCH[1]} (eSpeak scale 0-100 around the voice's own pitch)
  pitch range  {PITCH_RANGE[0]}-{PITCH_RANGE[1]} (eSpeak scale; library backend only)
  silence      eSpeak's own trimmed, then {SILENCE_S[0]}-{SILENCE_S[1]} s added before and after
  noise        white or pink ({PINK_NOISE_P:.0%} pink) over the whole clip at {SNR_DB[0]:g}-{SNR_DB[1]:g} dB SNR
  gain         peak at {PEAK_DBFS[0]:g} to {PEAK_DBFS[1]:g} dBFS

Voices ({len(voices)}):
{voice_lines}
"""


if __name__ == "__main__" and sys.argv[1:] == ["--espeak-worker"]:
    _worker_main()
