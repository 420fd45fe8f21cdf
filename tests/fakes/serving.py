"""Fakes for the serving ports: the model call, metrics and the archive."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from serving.archive import Archive, PermanentArchiveError
from serving.batching import Batching
from serving.inference import Predictor, WindowModel
from serving.limits import UploadLimits
from serving.metrics import ServingMetrics
from serving.monitoring import InputMetrics
from spira_core.monitoring import InputQuality
from spira_core.params import FeatureParams


class FakeWindowModel(WindowModel):
    """Probability = a fixed function of each window's mean, so answers are predictable; records calls."""

    def __init__(self, value: float | None = None) -> None:
        self.value = value
        self.calls: list[int] = []

    def predict(self, windows: np.ndarray) -> np.ndarray:
        self.calls.append(len(windows))
        if self.value is not None:
            return np.full(len(windows), self.value)
        return 1.0 / (1.0 + np.exp(-windows.mean(axis=(1, 2)) / 50.0))


class RecordingMetrics(ServingMetrics):
    def __init__(self) -> None:
        self.predictions: list[tuple[str, float]] = []
        self.rejections: list[str] = []
        self.secret: tuple[str, int | None, bool] | None = None
        self.archive: dict[str, int] = {
            "pending": 0,
            "uploaded": 0,
            "failed": 0,
            "dropped": 0,
            "poisoned": 0,
        }

    def prediction(self, label: str, audio_seconds: float) -> None:
        self.predictions.append((label, audio_seconds))

    def rejected(self, reason: str) -> None:
        self.rejections.append(reason)

    def secret_state(self, path: str, version: int | None, stale: bool) -> None:
        self.secret = (path, version, stale)

    def archive_state(
        self, pending: int, uploaded: int = 0, failed: int = 0, dropped: int = 0, poisoned: int = 0
    ) -> None:
        self.archive["pending"] = pending
        self.archive["poisoned"] += poisoned
        self.archive["uploaded"] += uploaded
        self.archive["failed"] += failed
        self.archive["dropped"] += dropped


class RecordingInputMetrics(RecordingMetrics, InputMetrics):
    """The serving metrics plus the input measures, per site label, in the order they came."""

    def __init__(self) -> None:
        super().__init__()
        self.qualities: list[tuple[str, InputQuality]] = []
        self.drift: dict[str, tuple[float, int]] = {}

    def input_quality(self, site: str, quality: InputQuality) -> None:
        self.qualities.append((site, quality))

    def input_drift(self, site: str, score: float, uploads: int) -> None:
        self.drift[site] = (score, uploads)


class MemoryArchive(Archive):
    """An object store in memory: down as a whole (`fail`), or failing (retryable) / refusing for good the
    keys that contain one of `failing` / `refusing`. Records every attempted key in `attempts`."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail = False
        self.failing: set[str] = set()
        self.refusing: set[str] = set()
        self.attempts: list[str] = []

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.attempts.append(key)
        if self.fail or any(part in key for part in self.failing):
            raise ConnectionError("object store unreachable")
        if any(part in key for part in self.refusing):
            raise PermanentArchiveError(f"400 InvalidArgument for {key}")
        self.objects[key] = body


def fake_predictor(
    value: float | None = None,
    threshold: float = 0.5,
    limits: UploadLimits | None = None,
    batching: Batching | None = None,
) -> Predictor:
    return Predictor(FeatureParams(), threshold, "7", FakeWindowModel(value), limits, batching)


def wav_bytes(
    seconds: float = 5.0,
    rate: int = 48_000,
    channels: int = 1,
    amplitude: float = 0.3,
    fmt: str = "WAV",
    subtype: str = "PCM_16",
    seed: int = 0,
) -> bytes:
    """A voice-like test clip: a 140 Hz harmonic tone with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    sig = amplitude * tone / np.max(np.abs(tone)) + 0.01 * rng.standard_normal(t.size)
    data = np.repeat(sig[:, None], channels, axis=1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt, subtype=subtype)
    return buf.getvalue()
