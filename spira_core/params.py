"""Every parameter that turns audio into model input, in one frozen value.

The same `FeatureParams` is saved with every model bundle and read back by serving, so a served model runs
exactly the preprocessing it was trained with. Defaults are SPIRA's (Casanova et al. 2021, exp3.5): MFCC
40/40, n_fft 1200, win 400, hop 160 at 16 kHz, 4 s windows moved by 1 s.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

# Bumped whenever a field's meaning changes; bundles from another version are refused when read.
FEATURE_PARAMS_VERSION = 1

TemporalMode = Literal["window", "padding", "random"]
TEMPORAL_MODES: tuple[str, ...] = ("window", "padding", "random")


class FeatureParamsError(ValueError):
    """A FeatureParams value or document that cannot be used."""


@dataclass(frozen=True)
class FeatureParams:
    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 40
    n_fft: int = 1200
    win_length: int = 400
    hop_length: int = 160
    f_min: float = 0.0
    f_max: float | None = None  # None: sample_rate / 2, as torchaudio does
    top_db: float = 80.0
    # temporal control: "window" = overlapping windows (file probability = mean over windows),
    # "padding" = one input zero-padded (or cut) to max_len_s, "random" = one random window per file
    # while training (inference then uses the overlapping windows)
    temporal_mode: str = "window"
    window_s: float = 4.0
    step_s: float = 1.0
    max_len_s: float = 10.0
    version: int = FEATURE_PARAMS_VERSION

    def __post_init__(self) -> None:
        if self.temporal_mode not in TEMPORAL_MODES:
            raise FeatureParamsError(
                f"temporal_mode must be one of {TEMPORAL_MODES}, got {self.temporal_mode!r}"
            )
        if self.version != FEATURE_PARAMS_VERSION:
            raise FeatureParamsError(
                f"feature params version {self.version} is not supported (this code reads {FEATURE_PARAMS_VERSION})"
            )
        for name in ("sample_rate", "n_mfcc", "n_mels", "n_fft", "win_length", "hop_length"):
            if int(getattr(self, name)) <= 0:
                raise FeatureParamsError(f"{name} must be positive")
        if self.win_length > self.n_fft:
            raise FeatureParamsError("win_length must not exceed n_fft")
        if self.n_mfcc > self.n_mels:
            raise FeatureParamsError("n_mfcc must not exceed n_mels")
        if self.window_s <= 0 or self.step_s <= 0 or self.max_len_s <= 0:
            raise FeatureParamsError("window_s, step_s and max_len_s must be positive")

    # -- derived sizes (frames of hop_length samples, centred STFT) --------------------------------------
    def frames_for_seconds(self, seconds: float) -> int:
        """Frames a centred STFT yields for `seconds` of audio: SPIRA's int(s * sr / hop) + 1."""
        return int(seconds * self.sample_rate / self.hop_length) + 1

    @property
    def input_frames(self) -> int:
        """Time length of one model input: a window, or the padded length in padding mode."""
        if self.temporal_mode == "padding":
            return self.frames_for_seconds(self.max_len_s)
        return self.frames_for_seconds(self.window_s)

    @property
    def step_frames(self) -> int:
        return max(1, round(self.step_s * self.sample_rate / self.hop_length))

    # -- JSON round trip ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FeatureParamsError(f"unknown feature parameter(s): {', '.join(unknown)}")
        if "version" not in data:
            raise FeatureParamsError("feature params document has no version field")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> FeatureParams:
        return cls.from_dict(json.loads(text))
