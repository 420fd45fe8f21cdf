"""Golden MFCC vectors from the REAL torchaudio, for tests/unit/core/test_mfcc_matches_torchaudio.py.

SPIRA computed its features with `torchaudio.transforms.MFCC`; spira_core/features.py reproduces that in
numpy so that neither serving nor training needs torchaudio. This script records what torchaudio itself
answers, with the parameters spira_core uses (spira_core.params.FeatureParams' defaults, restated below and
checked against FeatureParams by the unit test), on three deterministic inputs:

- `chirp`: a 1.5 s linear chirp 50 Hz → 7.5 kHz at half scale, then 0.25 s of silence (the top_db floor);
- `noise`: 1 s of white noise, numpy's default_rng(20261207), standard deviation 0.1;
- `voice`: 2 s of loadtests/audio.py's voice-like "speech" clip (harmonics, formants, pauses), 16 kHz.

The repository holds no patient recording (they are private), so no real one is among them. Each input is
stored as PCM16 (what SPIRA's recordings are) and read back as int16 / 32768, exactly as the unit test
does. For each, two outputs: `mfcc64`, torchaudio evaluated in float64 (torch's default dtype float64
while the transform is built, so the window, the filterbank and the DCT matrix are float64 too: the
definition, free of float32 rounding), and `mfcc32`, torchaudio as SPIRA ran it (float32).

Rerun (needs torch and torchaudio, which the project does not install; about 7 GB, outside the repo):

    python3 -m venv /tmp/ta
    /tmp/ta/bin/pip install torch==2.9.1 torchvision==0.24.1
    /tmp/ta/bin/pip install torch==2.9.1 'torchaudio==2.9.*'
    /tmp/ta/bin/python tests/golden/make_torchaudio_mfcc.py     # from the repository root

It rewrites tests/golden/torchaudio_mfcc.npz (the versions it ran with are stored in it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torchaudio

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "torchaudio_mfcc.npz"

# spira_core.params.FeatureParams' defaults (the unit test holds them equal)
SAMPLE_RATE, N_MFCC, N_MELS, N_FFT, WIN_LENGTH, HOP_LENGTH = 16000, 40, 40, 1200, 400, 160
F_MIN, F_MAX, TOP_DB = 0.0, None, 80.0


def inputs() -> dict[str, np.ndarray]:
    """The three clips as PCM16."""
    sys.path.insert(0, str(ROOT))
    from loadtests.audio import ClipSpec, synthesize  # standard library only

    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    f0, f1 = 50.0, 7500.0
    chirp = 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * 1.5) * t**2))
    chirp = np.concatenate([chirp, np.zeros(SAMPLE_RATE // 4)])
    noise = 0.1 * np.random.default_rng(20261207).standard_normal(SAMPLE_RATE)
    voice = np.array(synthesize(ClipSpec("golden-speech-16k", 2.0, SAMPLE_RATE, 1, 150.0, "speech", 21)))
    pcm = lambda x: np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)  # noqa: E731
    return {"chirp": pcm(chirp), "noise": pcm(noise), "voice": voice.astype(np.int16)}


def transform() -> torchaudio.transforms.MFCC:
    # SPIRA's call: log_mels=False (so AmplitudeToDB("power", top_db=80)), DCT-II ortho; the melkwargs'
    # other defaults are torchaudio's (Hann window, power 2, centred reflect padding, HTK mel, no norm).
    return torchaudio.transforms.MFCC(
        sample_rate=SAMPLE_RATE,
        n_mfcc=N_MFCC,
        dct_type=2,
        norm="ortho",
        log_mels=False,
        melkwargs={
            "n_fft": N_FFT,
            "win_length": WIN_LENGTH,
            "hop_length": HOP_LENGTH,
            "n_mels": N_MELS,
            "f_min": F_MIN,
            "f_max": F_MAX,
        },
    )


def run(pcm: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        mfcc = transform().to(dtype)
        wav = torch.from_numpy(pcm.astype(np.float64) / 32768.0).to(dtype)
        with torch.no_grad():
            out = mfcc(wav)  # [n_mfcc, frames]
    finally:
        torch.set_default_dtype(previous)
    return out.T.contiguous().numpy()  # [frames, n_mfcc], spira_core's layout


def main() -> None:
    torch.set_num_threads(1)
    arrays: dict[str, np.ndarray] = {}
    for name, pcm in inputs().items():
        arrays[f"{name}_pcm16"] = pcm
        arrays[f"{name}_mfcc64"] = run(pcm, torch.float64)
        arrays[f"{name}_mfcc32"] = run(pcm, torch.float32)
    arrays["params"] = np.array(
        [SAMPLE_RATE, N_MFCC, N_MELS, N_FFT, WIN_LENGTH, HOP_LENGTH, F_MIN, TOP_DB], dtype=np.float64
    )
    arrays["versions"] = np.array([f"torch {torch.__version__}", f"torchaudio {torchaudio.__version__}"])
    np.savez_compressed(OUT, **arrays)
    print(
        f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes) with torchaudio {torchaudio.__version__}"
    )


if __name__ == "__main__":
    main()
