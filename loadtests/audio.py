"""Deterministic voice-like WAV clips for the load test, generated once and cached in a folder.

The gate must not depend on patient recordings (they are private) nor on application code (it tests the
server from outside), so it synthesises its own uploads: a harmonic source with vowel formants, vibrato,
jitter, breath noise and, for the "speech" clips, syllable-rate amplitude modulation with pauses. That is
enough for the server's decoder, resampler and feature extractor to do the same work they do on real
phone recordings of SPIRA's tasks (48 kHz or 44.1 kHz, mono or stereo, 2 to 10 s).

Only the standard library is used (no numpy) to keep the loadtest image small; a one-period wavetable
keeps the per-sample work to a lookup, so the whole corpus takes about a second to build.

Run `python -m loadtests.audio DIR` to build the corpus ahead of time (the image does it at build time).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import random
import shutil
import tempfile
import wave
from array import array
from dataclasses import asdict, dataclass
from pathlib import Path

# Bump when the generated audio changes so cached corpora are rebuilt rather than silently reused.
GENERATOR_VERSION = 1
MANIFEST = "manifest.json"

_TABLE_SIZE = 2048
_BLOCK = 64  # samples per control-rate update of pitch and envelope
# Formants of an open vowel (/a/): centre frequency and bandwidth in Hz.
_FORMANTS = ((730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0), (3400.0, 250.0))


@dataclass(frozen=True)
class ClipSpec:
    name: str
    duration_s: float
    sample_rate: int
    channels: int
    f0_hz: float
    kind: str  # "vowel" (sustained /a/) or "speech" (syllables and pauses, like the sentence task)
    seed: int

    @property
    def filename(self) -> str:
        return f"{self.name}.wav"


# The mix the gate sends: SPIRA's phone recordings are mostly 48 kHz mono, some 44.1 kHz stereo; the
# model runs at 16 kHz, so 16 kHz uploads (no resampling) are in the mix too. Durations span 2-10 s.
CORPUS: tuple[ClipSpec, ...] = (
    ClipSpec("vowel-48k-mono-3s", 3.0, 48_000, 1, 118.0, "vowel", 1),
    ClipSpec("vowel-48k-mono-6s", 6.0, 48_000, 1, 205.0, "vowel", 2),
    ClipSpec("speech-48k-mono-2s", 2.0, 48_000, 1, 132.0, "speech", 3),
    ClipSpec("speech-48k-mono-5s", 5.2, 48_000, 1, 221.0, "speech", 4),
    ClipSpec("speech-48k-mono-9s", 9.5, 48_000, 1, 104.0, "speech", 5),
    ClipSpec("speech-48k-stereo-7s", 7.0, 48_000, 2, 190.0, "speech", 6),
    ClipSpec("vowel-44k-stereo-4s", 4.0, 44_100, 2, 126.0, "vowel", 7),
    ClipSpec("speech-44k-stereo-10s", 10.0, 44_100, 2, 238.0, "speech", 8),
    ClipSpec("speech-44k-mono-3s", 2.7, 44_100, 1, 145.0, "speech", 9),
    ClipSpec("vowel-16k-mono-8s", 8.0, 16_000, 1, 176.0, "vowel", 10),
    ClipSpec("speech-16k-mono-4s", 4.3, 16_000, 1, 112.0, "speech", 11),
    ClipSpec("speech-16k-stereo-6s", 6.1, 16_000, 2, 214.0, "speech", 12),
)


def _formant_gain(freq: float) -> float:
    return sum(1.0 / (1.0 + ((freq - centre) / bandwidth) ** 2) for centre, bandwidth in _FORMANTS)


def _period_table(f0_hz: float, sample_rate: int, rng: random.Random) -> list[float]:
    """One period of the voiced source shaped by the formants, peak-normalised."""
    top = min(0.45 * sample_rate, 5_000.0)
    harmonics = [k for k in range(1, int(top // f0_hz) + 1)]
    # glottal source falls ~12 dB/octave; the formant envelope adds the vowel colour
    amps = [(1.0 / k**2 + 0.02 / k) * (0.15 + _formant_gain(k * f0_hz)) for k in harmonics]
    phases = [rng.uniform(0.0, 2.0 * math.pi) for _ in harmonics]
    table = []
    for i in range(_TABLE_SIZE):
        x = 2.0 * math.pi * i / _TABLE_SIZE
        table.append(sum(a * math.sin(k * x + p) for k, a, p in zip(harmonics, amps, phases, strict=True)))
    peak = max(abs(v) for v in table) or 1.0
    return [v / peak for v in table]


def _speech_envelope(n_blocks: int, block_s: float, rng: random.Random) -> list[float]:
    """Syllables of 150-300 ms with short gaps and a longer pause every few syllables."""
    env: list[float] = []
    while len(env) < n_blocks:
        syllable = max(2, int(rng.uniform(0.15, 0.30) / block_s))
        env.extend(math.sin(math.pi * (i + 0.5) / syllable) ** 0.7 for i in range(syllable))
        gap = rng.uniform(0.02, 0.06) if rng.random() < 0.8 else rng.uniform(0.2, 0.35)
        env.extend([0.0] * max(1, int(gap / block_s)))
    return env[:n_blocks]


def _vowel_envelope(n_blocks: int, block_s: float, rng: random.Random) -> list[float]:
    """A sustained vowel: fast attack, slight shimmer, slow decay and release as breath runs out."""
    attack, release = max(1, int(0.12 / block_s)), max(1, int(0.25 / block_s))
    env = []
    for b in range(n_blocks):
        level = min(1.0, (b + 1) / attack, (n_blocks - b) / release) * (1.0 - 0.2 * b / n_blocks)
        env.append(max(0.0, level * (1.0 + rng.uniform(-0.04, 0.04))))
    return env


def synthesize(spec: ClipSpec) -> list[int]:
    """Mono PCM16 samples of the clip (deterministic for a given spec)."""
    rng = random.Random(spec.seed)
    n = round(spec.duration_s * spec.sample_rate)
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    block_s = _BLOCK / spec.sample_rate
    table = _period_table(spec.f0_hz, spec.sample_rate, rng)
    shape = _speech_envelope if spec.kind == "speech" else _vowel_envelope
    envelope = shape(n_blocks, block_s, rng)
    noise = [rng.gauss(0.0, 1.0) for _ in range(4099)]  # prime length: no audible period with _BLOCK
    out = array("h", bytes(2 * n))
    phase, jitter, vib_phase = 0.0, 0.0, rng.uniform(0.0, 2.0 * math.pi)
    vib_step = 2.0 * math.pi * 5.3 * block_s  # 5.3 Hz vibrato
    pos = 0
    for b in range(n_blocks):
        jitter = 0.9 * jitter + rng.uniform(-0.004, 0.004)  # slow random pitch wander
        f0 = spec.f0_hz * (1.0 + 0.018 * math.sin(vib_phase + b * vib_step) + jitter)
        step = f0 * _TABLE_SIZE / spec.sample_rate
        level = envelope[b]
        voiced, breath, floor = 14_000.0 * level, 700.0 * level, 60.0  # PCM16 units
        for _ in range(min(_BLOCK, n - pos)):
            phase += step
            if phase >= _TABLE_SIZE:
                phase -= _TABLE_SIZE
            v = voiced * table[int(phase)] + (breath + floor) * noise[pos % 4099]
            out[pos] = -32768 if v < -32768 else 32767 if v > 32767 else int(v)
            pos += 1
    return out.tolist()


def wav_bytes(spec: ClipSpec) -> bytes:
    """The clip as a PCM16 WAV file; a stereo clip's right channel is the left one, delayed and quieter."""
    left = synthesize(spec)
    if spec.channels == 2:
        delay = max(1, spec.sample_rate // 3000)  # ~0.3 ms: two phone microphones a few cm apart
        right = [0] * delay + [int(0.85 * s) for s in left[:-delay]]
        frames = array("h", [s for pair in zip(left, right, strict=True) for s in pair])
    else:
        frames = array("h", left)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(spec.channels)
        w.setsampwidth(2)
        w.setframerate(spec.sample_rate)
        w.writeframes(frames.tobytes())
    return buf.getvalue()


@dataclass(frozen=True)
class CorpusClip:
    path: Path
    spec: ClipSpec


def _manifest_matches(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("generator_version") != GENERATOR_VERSION:
        return False
    want = {spec.filename for spec in CORPUS}
    have = {entry["file"] for entry in manifest.get("clips", [])}
    return want == have and all((folder / name).is_file() for name in want)


def build_corpus(folder: Path) -> None:
    """Write every clip and a manifest (file, format, size, sha256) into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for spec in CORPUS:
        data = wav_bytes(spec)
        (folder / spec.filename).write_bytes(data)
        entries.append(
            {
                "file": spec.filename,
                **asdict(spec),
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {"generator_version": GENERATOR_VERSION, "clips": entries}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def ensure_corpus(folder: Path) -> list[CorpusClip]:
    """The cached corpus in folder, built first if missing or from another generator version.

    Built in a sibling temporary folder and renamed into place, so a concurrent reader never sees a
    half-written corpus and a crash leaves no partial cache behind.
    """
    folder = Path(folder)
    if not _manifest_matches(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            build_corpus(staging)
            # mkdtemp makes a 0700 folder; a corpus built as root at image build time must be readable by
            # the non-root user that runs the gate
            staging.chmod(0o755)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not _manifest_matches(folder):  # another process may have won the race: fine if so
                raise
    return [CorpusClip(folder / spec.filename, spec) for spec in CORPUS]


def default_cache_dir() -> Path:
    """SPIRA_GATE_CORPUS_DIR, else the user's cache folder (XDG), versioned by the generator."""
    if configured := os.environ.get("SPIRA_GATE_CORPUS_DIR"):
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "spira-loadtests" / f"audio-v{GENERATOR_VERSION}"


# --- uploads the server must refuse with a 4xx ---------------------------------------------------


@dataclass(frozen=True)
class InvalidUpload:
    kind: str
    filename: str
    content_type: str
    content: bytes
    field: str = "audio"  # the multipart field name; a wrong name means "the audio field is missing"


def invalid_uploads(valid_wav: bytes) -> tuple[InvalidUpload, ...]:
    """Broken uploads a phone app can really send: cut-off transfers, wrong files, nothing at all."""
    return (
        # the transfer stopped inside the RIFF/fmt header: no decoder can read a format from it
        InvalidUpload("truncated", "cut.wav", "audio/wav", valid_wav[:26]),
        InvalidUpload("not-audio", "notes.wav", "audio/wav", b'{"note": "this is JSON, not audio"}\n' * 8),
        InvalidUpload("empty", "empty.wav", "audio/wav", b""),
        InvalidUpload("missing-field", "clip.wav", "audio/wav", valid_wav[:4096], field="file"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the load test's cached WAV corpus.")
    parser.add_argument("folder", type=Path, nargs="?", default=None, help="default: the user cache")
    args = parser.parse_args(argv)
    folder = args.folder or default_cache_dir()
    clips = ensure_corpus(folder)
    total = sum(c.path.stat().st_size for c in clips)
    print(f"{len(clips)} clips, {total / 1e6:.1f} MB in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
