"""Hospital-ward noise clips for SPIRA's noise augmentation (pure: parameters + Generator → samples).

SPIRA's patients were recorded in COVID-19 wards, so the authors added ward noise to the controls' clips
to keep the model from learning "hospital = patient". These clips imitate the usual sources: patient
monitor beeps, ventilation/air-conditioning hum, babble of other people talking, and door/latch clicks.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from training.data.synth.voice import (
    SYLLABLE_VOWELS,
    VOWEL_FORMANTS,
    formant_sos,
    glottal_source,
    lowpass_sos,
    radiate,
    rms,
)

NOISE_KINDS = ("monitor_beeps", "ventilation_hum", "babble", "door_clicks")


def monitor_beeps(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """One or two patient monitors: ~1 kHz tone beeps (with harmonics) at heart-rate-like intervals."""
    out = np.zeros(n)
    t_all = np.arange(n) / fs
    for monitor in range(int(rng.integers(1, 3))):
        freq = rng.uniform(700.0, 1200.0)
        beep_len = rng.uniform(0.06, 0.15)
        interval = 60.0 / rng.uniform(55.0, 110.0)
        level = 1.0 if monitor == 0 else rng.uniform(0.2, 0.6)
        t = rng.uniform(0.0, interval)
        while t < n / fs:
            a, b = int(t * fs), min(int((t + beep_len) * fs), n)
            tt = t_all[a:b] - t
            tone = (
                np.sin(2 * np.pi * freq * tt)
                + 0.25 * np.sin(4 * np.pi * freq * tt)
                + 0.1 * np.sin(6 * np.pi * freq * tt)
            )
            ramp = np.minimum(1.0, np.minimum(tt, beep_len - tt) / 0.005)
            out[a:b] += level * tone * np.clip(ramp, 0.0, 1.0)
            t += interval * rng.uniform(0.97, 1.03)
    return out + 0.01 * rng.standard_normal(n)


def ventilation_hum(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) over lowpassed airflow noise with slow fan modulation."""
    t = np.arange(n) / fs
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi)) / k**1.5 for k in range(1, 9))
    sos = lowpass_sos(fs, float(round(rng.uniform(300.0, 1200.0), -1)))
    air = signal.sosfilt(sos, rng.standard_normal(n))
    fan = 1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t)
    return 0.5 * hum / rms(hum) + fan * air / rms(air)


def babble(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Several distant talkers: glottal sources through changing vowel formants, syllable-rate modulated."""
    out = np.zeros(n)
    t = np.arange(n) / fs
    for _ in range(int(rng.integers(4, 8))):
        f0 = rng.uniform(90.0, 240.0)
        contour = f0 * (1.0 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6.3)))
        flow = glottal_source(n, fs, f0, 0.01, 0.05, 0.6, rng, f0_contour=contour)
        talker = np.zeros(n)
        pos = 0
        scale = rng.uniform(0.95, 1.2)
        while pos < n:
            length = int(rng.uniform(0.12, 0.3) * fs)
            vowel = SYLLABLE_VOWELS[int(rng.integers(len(SYLLABLE_VOWELS)))]
            chunk = flow[pos : pos + length]
            talker[pos : pos + length] = signal.sosfilt(
                formant_sos(fs, tuple(f * scale for f in VOWEL_FORMANTS[vowel])), chunk - chunk.mean()
            )
            pos += length
        # syllabic (~4 Hz) and phrase-level on/off modulation
        syllabic = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3.0, 5.5) * t + rng.uniform(0, 6.3))
        phrases = signal.sosfilt(lowpass_sos(fs, 0.8, 1), rng.standard_normal(n)) > -0.02
        talker = radiate(talker) * syllabic * phrases
        out += rng.uniform(0.3, 1.0) * talker / rms(talker)
    # distance and room: lose the highs
    return signal.sosfilt(lowpass_sos(fs, 3000.0), out)


def door_clicks(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Door latches and clicks: impulses exciting a few damped resonances, over a quiet room."""
    out = 0.002 * rng.standard_normal(n)
    for _ in range(int(rng.integers(2, 6))):
        at = int(rng.uniform(0.0, 0.9) * n)
        length = min(int(0.4 * fs), n - at)
        tt = np.arange(length) / fs
        ring = sum(
            rng.uniform(0.3, 1.0)
            * np.sin(2 * np.pi * rng.uniform(150.0, 2500.0) * tt)
            * np.exp(-tt / rng.uniform(0.01, 0.12))
            for _ in range(3)
        )
        click = rng.standard_normal(length) * np.exp(-tt / 0.003)
        out[at : at + length] += rng.uniform(0.3, 1.0) * (ring + click)
    return out


GENERATORS = {
    "monitor_beeps": monitor_beeps,
    "ventilation_hum": ventilation_hum,
    "babble": babble,
    "door_clicks": door_clicks,
}


def render_noise(kind: str, duration_s: float, fs: int, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """One mono noise clip of ``kind`` at RMS ``dbfs`` (peak-limited below full scale)."""
    n = round(duration_s * fs)
    x = GENERATORS[kind](n, fs, rng)
    x = x * (10.0 ** (dbfs / 20.0) / rms(x))
    peak = float(np.max(np.abs(x)))
    if peak > 0.98:
        x *= 0.98 / peak
    return x
