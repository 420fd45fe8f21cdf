from __future__ import annotations

import numpy as np
import pytest

from spira_core.augment import CONTROL, PATIENT, NoiseConfig, add_noise, file_rng, scaled_noise


def _noises(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal(n).astype(np.float32) * s for n, s in ((48000, 0.5), (8000, 2.0), (30000, 0.05))
    ]


def test_each_noise_clip_is_rescaled_to_a_peak_within_the_configured_bounds():
    cfg = NoiseConfig(min_amp=0.03, max_amp=0.2)
    rng = np.random.default_rng(1)
    peaks = []
    for _ in range(200):
        clip = _noises()[int(rng.integers(0, 3))]
        peaks.append(float(np.abs(scaled_noise(clip, 20000, cfg, rng)).max()))
    assert min(peaks) >= 0.03 - 1e-6 and max(peaks) <= 0.2 + 1e-6
    assert max(peaks) - min(peaks) > 0.1  # spread over the range, not a constant


def test_added_noise_is_bounded_by_the_count_times_the_maximum_amplitude():
    cfg = NoiseConfig(num_noise_control=2, num_noise_patient=4, min_amp=0.05, max_amp=0.1)
    wav = np.zeros(16000, dtype=np.float32)
    for label, count in ((CONTROL, 2), (PATIENT, 4)):
        noisy = add_noise(wav, label, _noises(), cfg, np.random.default_rng(7))
        assert 0.05 <= np.abs(noisy).max() <= count * 0.1 + 1e-6
    assert not wav.any()  # the input is left untouched


def test_zero_noise_clips_leave_the_audio_unchanged():
    cfg = NoiseConfig(num_noise_control=0)
    wav = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    assert np.array_equal(add_noise(wav, CONTROL, _noises(), cfg, np.random.default_rng(0)), wav)


def test_test_time_noise_is_the_same_for_a_file_on_every_run_and_differs_between_files():
    cfg = NoiseConfig()
    wav = np.zeros(8000, dtype=np.float32)
    a1 = add_noise(wav, PATIENT, _noises(), cfg, file_rng(42, "p/a.wav"))
    a2 = add_noise(wav, PATIENT, _noises(), cfg, file_rng(42, "p/a.wav"))
    b = add_noise(wav, PATIENT, _noises(), cfg, file_rng(42, "p/b.wav"))
    assert np.array_equal(a1, a2) and not np.array_equal(a1, b)


def test_bad_amplitude_bounds_are_refused():
    with pytest.raises(ValueError):
        NoiseConfig(min_amp=0.3, max_amp=0.1)
