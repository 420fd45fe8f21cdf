"""Input monitoring, pure: what an upload's audio looks like, and how far its MFCCs drift from training's.

    quality = input_quality(samples, sample_rate)            # duration, rate, clipping, silence, SNR
    reference = DriftReference.from_frames(training_frames)  # per-coefficient bin edges + proportions
    window = DriftWindow(reference, uploads=50)              # the last uploads of one site
    window.add(reference.counts(upload_frames))
    window.score()                                           # mean PSI over coefficients: 0 = like training

No I/O: serving's monitor (serving/monitoring.py) and any other consumer (a queue worker) feed it decoded
samples and MFCC frames and export what it returns. The reference travels in the model bundle as the plain
file `drift_reference.json` (spira_core.model), written by training from its training frames.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spira_core.audio import to_mono

DRIFT_REFERENCE_FORMAT = "spira-drift-reference/1"
DRIFT_BINS = 10
# Laplace smoothing of a histogram's proportions: an empty bin on either side keeps PSI finite
PSI_SMOOTHING = 0.5
# 20 ms frames for the loudness measures
FRAME_S = 0.02
# A sample within this fraction of the clip's peak sits at the peak; three in a row are a flat top (a sine
# sampled near its crest reaches the peak within 1e-4 on one sample, or two at most)
CLIP_TOLERANCE = 1e-4
CLIP_RUN = 3
# A frame this far below the loudest frame (or below the absolute floor) is silence
SILENCE_BELOW_PEAK_DB = 40.0
SILENCE_FLOOR_DBFS = -60.0
# Site labels: a bounded set, whatever clients send
OTHER_SITE = "other"
UNSPECIFIED_SITE = "unspecified"


@dataclass(frozen=True)
class InputQuality:
    duration_s: float
    sample_rate: int
    clipping_ratio: float  # share of samples sitting at the clip's peak (≈ 0 for an unclipped recording)
    silence_ratio: float  # share of 20 ms frames that are silence
    snr_db: float  # loud frames (95th percentile) over the noise floor (10th percentile), in dB


def _frame_db(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    size = max(1, round(FRAME_S * sample_rate))
    n = len(mono) // size
    frames = mono.reshape(1, -1) if n == 0 else mono[: n * size].reshape(n, size)
    power = np.einsum("ij,ij->i", frames, frames) / np.float32(frames.shape[1])
    return 10.0 * np.log10(np.maximum(power.astype(np.float64), 1e-20))


def _flat_top_share(samples: np.ndarray) -> float:
    """Share of samples [frames, channels] in runs of CLIP_RUN or more consecutive samples at the peak
    magnitude, of either sign. Only the samples at the peak are walked (a handful in an unclipped
    recording); no |x| array is made (two comparisons instead: an upload's samples are a megabyte)."""
    peak = float(np.maximum(samples.max(), -samples.min()))  # NaN stays NaN: then nothing is at the peak
    if not peak > 0:
        return 0.0
    threshold = peak * (1.0 - CLIP_TOLERANCE)
    clipped = 0
    for channel in samples.T:
        at = np.flatnonzero((channel >= threshold) | (channel <= -threshold))
        if len(at) < CLIP_RUN:
            continue
        # runs of consecutive indices: split where the step is not 1
        breaks = np.flatnonzero(np.diff(at) != 1)
        lengths = np.diff(np.concatenate(([0], breaks + 1, [len(at)])))
        clipped += int(lengths[lengths >= CLIP_RUN].sum())
    return clipped / samples.size


def input_quality(samples: np.ndarray, sample_rate: int) -> InputQuality:
    """The measures of one decoded upload: `samples` float [frames] or [frames, channels] at `sample_rate`."""
    data = np.asarray(samples, dtype=np.float32)
    n = int(data.shape[0])
    if n == 0:
        return InputQuality(0.0, int(sample_rate), 0.0, 1.0, 0.0)
    channels = data.reshape(n, -1)
    # one channel: the samples themselves (a strided view of a [frames, 1] array is contiguous), else the
    # channels' float32 mean (to_mono: bit for bit numpy's mean, ~30x faster)
    mono = channels[:, 0] if channels.shape[1] == 1 else np.ascontiguousarray(to_mono(data))
    clipping = _flat_top_share(channels)
    db = _frame_db(mono, sample_rate)
    silent = db < max(SILENCE_FLOOR_DBFS, float(db.max()) - SILENCE_BELOW_PEAK_DB)
    floor, loud = np.percentile(db, [10, 95])
    snr = float(loud - floor)
    return InputQuality(
        duration_s=n / float(sample_rate),
        sample_rate=int(sample_rate),
        clipping_ratio=float(clipping),
        silence_ratio=float(np.mean(silent)),
        snr_db=max(0.0, snr),
    )


def psi(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Population stability index per row: Σ (a − e) · ln(a / e) over bins; rows are coefficients.

    Both are proportions [F, B] with no zero (see `proportions`). 0 for identical distributions; by the
    usual reading < 0.1 is stable, 0.1–0.25 a moderate shift, > 0.25 a large one."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"PSI of mismatched histograms {e.shape} and {a.shape}")
    return np.sum((a - e) * np.log(a / e), axis=-1)


def proportions(counts: np.ndarray, smoothing: float = PSI_SMOOTHING) -> np.ndarray:
    """Histogram counts [F, B] → smoothed proportions per row (each row sums to 1, no zero)."""
    c = np.asarray(counts, dtype=np.float64) + smoothing
    return c / c.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class DriftReference:
    """Per MFCC coefficient: inner bin edges [F, B−1] (training quantiles) and training's proportions
    [F, B] in the bins they make (the outer bins are open-ended)."""

    edges: np.ndarray
    expected: np.ndarray
    frames: int

    def __post_init__(self) -> None:
        edges, expected = np.asarray(self.edges, np.float64), np.asarray(self.expected, np.float64)
        if edges.ndim != 2 or expected.ndim != 2 or expected.shape != (edges.shape[0], edges.shape[1] + 1):
            raise ValueError(f"drift reference: edges {edges.shape} do not fit proportions {expected.shape}")
        if not (np.all(np.isfinite(edges)) and np.all(expected > 0)):
            raise ValueError("drift reference: edges must be finite and proportions positive")
        if np.any(np.diff(edges, axis=1) < 0):
            raise ValueError("drift reference: edges must be sorted per coefficient")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "expected", expected)

    @property
    def coefficients(self) -> int:
        return int(self.edges.shape[0])

    @property
    def bins(self) -> int:
        return int(self.expected.shape[1])

    @classmethod
    def from_frames(cls, frames: np.ndarray, bins: int = DRIFT_BINS) -> DriftReference:
        """Training's MFCC frames [N, F] → quantile edges per coefficient and the smoothed proportions."""
        x = np.asarray(frames, dtype=np.float64)
        if x.ndim != 2 or len(x) < bins:
            raise ValueError(f"drift reference: need at least {bins} frames [N, F], got {x.shape}")
        edges = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1], axis=0).T  # [F, B-1]
        ref = cls(edges, np.full((x.shape[1], bins), 1.0 / bins), len(x))
        return cls(edges, proportions(ref.counts(x)), len(x))

    def counts(self, frames: np.ndarray) -> np.ndarray:
        """How many of `frames` [N, F] fall in each coefficient's bins: int64 [F, B]."""
        x = np.asarray(frames, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.coefficients:
            raise ValueError(f"drift reference of {self.coefficients} coefficients, frames {x.shape}")
        # each coefficient's values sorted, then its B−1 edges looked up in them: how many values lie below
        # each edge; the bins are the differences. Bin b holds the values with exactly b edges at or below
        # them (the outer bins open-ended), as a search of each value among the edges would give, but the
        # work is one sort of N·F values plus F·(B−1) lookups instead of N·F lookups: ~0.13 against
        # ~0.6 ms for an upload's 571 frames, on the server's compute thread (docs/performance.md)
        if self.bins == 1:
            return np.full((self.coefficients, 1), x.shape[0], dtype=np.int64)
        values = np.sort(x.T, axis=1)  # [F, N]
        below = np.empty((self.coefficients, self.bins - 1), dtype=np.int64)
        for f in range(self.coefficients):
            below[f] = values[f].searchsorted(self.edges[f], side="left")
        counts = np.empty((self.coefficients, self.bins), dtype=np.int64)
        counts[:, 0] = below[:, 0]
        counts[:, 1:-1] = np.diff(below, axis=1)
        counts[:, -1] = x.shape[0] - below[:, -1]
        return counts

    def score(self, counts: np.ndarray) -> float:
        """The drift of histogram counts [F, B]: the mean over coefficients of their PSI."""
        return float(np.mean(psi(self.expected, proportions(counts))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DRIFT_REFERENCE_FORMAT,
            "feature": "mfcc",
            "statistic": "psi",
            "bins": self.bins,
            "frames": int(self.frames),
            "edges": [[float(v) for v in row] for row in self.edges],
            "proportions": [[float(v) for v in row] for row in self.expected],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReference:
        if data.get("format") != DRIFT_REFERENCE_FORMAT:
            raise ValueError(
                f"drift reference of format {data.get('format')!r}, not {DRIFT_REFERENCE_FORMAT}"
            )
        return cls(np.array(data["edges"]), np.array(data["proportions"]), int(data["frames"]))


class DriftWindow:
    """The histogram counts of the last `uploads` uploads of one site, summed, and their drift score."""

    def __init__(self, reference: DriftReference, uploads: int = 50) -> None:
        if uploads < 1:
            raise ValueError("a drift window holds at least one upload")
        self.reference = reference
        self._items: collections.deque[np.ndarray] = collections.deque(maxlen=uploads)
        self._sum = np.zeros((reference.coefficients, reference.bins), dtype=np.int64)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, counts: np.ndarray) -> float:
        """One upload's counts in; the oldest out when full. Returns the window's score."""
        if len(self._items) == self._items.maxlen:
            self._sum -= self._items[0]
        self._items.append(np.asarray(counts, dtype=np.int64))
        self._sum += self._items[-1]
        return self.score()

    def score(self) -> float:
        return self.reference.score(self._sum) if self._items else math.nan


def site_label(site: str | None, known: frozenset[str] | set[str] | tuple[str, ...]) -> str:
    """The label a site is exported under: a declared site as is (case and spaces ignored), anything else
    `other`, none given `unspecified`: the label set is the declared sites plus two, whatever clients send."""
    name = (site or "").strip().lower()
    if not name:
        return UNSPECIFIED_SITE
    return name if name in {s.strip().lower() for s in known} else OTHER_SITE


def parse_sites(value: str | None) -> tuple[str, ...]:
    """A declared list of sites (comma-separated, as a secret setting holds it) → sorted unique names."""
    names = {s.strip().lower() for s in (value or "").split(",")}
    return tuple(sorted(n for n in names if n and n not in (OTHER_SITE, UNSPECIFIED_SITE)))


@dataclass(frozen=True)
class InputObservation:
    """What monitoring keeps of one upload: its quality, and its MFCC histogram when there is a reference."""

    quality: InputQuality
    counts: np.ndarray | None


def observe_input(
    samples: np.ndarray, sample_rate: int, frames: np.ndarray, reference: DriftReference | None
) -> InputObservation:
    """One upload's measures: decoded samples at their own rate, and the MFCC frames the model sees."""
    counts = reference.counts(frames) if reference is not None else None
    return InputObservation(input_quality(samples, sample_rate), counts)
