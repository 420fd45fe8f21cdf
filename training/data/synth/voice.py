"""Source-filter voice synthesis: pure functions of parameters and a numpy Generator (no I/O).

Source: a Rosenberg-style glottal flow pulse per cycle, with per-cycle period (jitter) and amplitude
(shimmer) perturbation, plus aspiration noise modulated by the glottal opening (breathiness).
Filter: a cascade of second-order formant resonators (Peterson & Barney 1952 vowel formants, scaled for
the speaker), then lip radiation as a first difference.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from training.data.synth.params import Range, SynthParams

# Peterson & Barney (1952) adult male averages, F1..F3 in Hz; F4 is a typical 3.3-3.5 kHz value.
VOWEL_FORMANTS: dict[str, tuple[float, float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0, 3400.0),
    "e": (530.0, 1840.0, 2480.0, 3500.0),
    "i": (270.0, 2290.0, 3010.0, 3700.0),
    "o": (570.0, 840.0, 2410.0, 3300.0),
    "u": (300.0, 870.0, 2240.0, 3300.0),
}
BANDWIDTHS_HZ = (90.0, 110.0, 170.0, 250.0)
# /a/ is SPIRA's sustained-vowel task; syllable trains cycle through a CV pattern like "pa-ta-ka"
SUSTAINED_VOWEL = "a"
SYLLABLE_VOWELS = ("a", "e", "i", "o", "u")


@dataclass(frozen=True)
class ClipSpec:
    """Everything drawn for one recording; ``render_clip`` turns it into samples."""

    index: int
    label: int
    severity: float
    sex: str
    task: str  # "vowel" or "syllables"
    sample_rate: int
    channels: int
    duration_s: float
    f0_hz: float
    formant_scale: float
    hnr_db: float
    jitter: float
    shimmer: float
    open_quotient: float
    level_db: float
    breath_group_s: float
    pause_s: float
    inhalation_db: float
    voice_dbfs: float
    gain_db: float
    background_dbfs: float
    lead_s: float
    tail_s: float


def _lerp(r: Range, t: float) -> float:
    return r[0] + (r[1] - r[0]) * t


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def draw_clip_spec(params: SynthParams, index: int, label: int, rng: np.random.Generator) -> ClipSpec:
    a, b = params.patient_severity if label == 1 else params.control_severity
    severity = float(rng.beta(a, b))

    def marker(r: Range) -> float:
        # same severity → marker map for both classes; scatter keeps markers from being perfectly correlated
        return _lerp(r, severity) * float(np.exp(rng.normal(0.0, params.marker_scatter)))

    def marker_db(r: Range, spread_db: float) -> float:
        return _lerp(r, severity) + float(rng.normal(0.0, spread_db))

    sex = "female" if rng.random() < params.female_fraction else "male"
    f0 = _uniform(rng, params.female_f0_hz if sex == "female" else params.male_f0_hz)
    formant_scale = (1.15 if sex == "female" else 1.0) * float(np.exp(rng.normal(0.0, 0.04)))
    task = "syllables" if rng.random() < params.syllable_fraction else "vowel"
    rates = np.asarray(params.sample_rate_weights, dtype=float)
    sample_rate = int(params.sample_rates[int(rng.choice(len(rates), p=rates / rates.sum()))])
    channels = 2 if rng.random() < params.stereo_fraction else 1
    short = rng.random() < params.short_fraction
    duration = _uniform(rng, params.short_durations_s if short else params.durations_s)
    return ClipSpec(
        index=index,
        label=label,
        severity=severity,
        sex=sex,
        task=task,
        sample_rate=sample_rate,
        channels=channels,
        duration_s=round(duration, 3),
        f0_hz=f0,
        formant_scale=formant_scale,
        hnr_db=marker_db(params.hnr_db, 2.0),
        jitter=marker(params.jitter),
        shimmer=marker(params.shimmer),
        open_quotient=float(np.clip(marker_db(params.open_quotient, 0.03), 0.4, 0.95)),
        level_db=marker_db(params.level_db, 1.5),
        breath_group_s=max(0.6, marker(params.breath_group_s)),
        pause_s=marker(params.pause_s),
        inhalation_db=marker_db(params.inhalation_db, 2.0),
        voice_dbfs=_uniform(rng, params.voice_dbfs),
        gain_db=_uniform(rng, params.device_gain_db),
        background_dbfs=_uniform(rng, params.background_dbfs),
        lead_s=_uniform(rng, params.lead_silence_s),
        tail_s=_uniform(rng, params.lead_silence_s),
    )


# ---------------------------------------------------------------------------------------------- source


def glottal_source(
    n: int,
    fs: int,
    f0_hz: float,
    jitter: float,
    shimmer: float,
    open_quotient: float,
    rng: np.random.Generator,
    f0_contour: np.ndarray | None = None,
) -> np.ndarray:
    """Glottal flow (>= 0) of ``n`` samples: one Rosenberg pulse per cycle, jittered and shimmered.

    For i.i.d. Gaussian perturbations the expected local jitter is sigma * 2/sqrt(pi), so sigma is set from
    the requested local jitter/shimmer values.
    """
    to_sigma = math.sqrt(math.pi) / 2.0
    duration = n / fs
    max_cycles = int(duration * f0_hz * 2.0) + 8
    # slow F0 drift (about 1-3 %), evaluated at nominal cycle times
    t_nominal = np.arange(max_cycles) / f0_hz
    if f0_contour is None:
        rate, depth, phase = rng.uniform(0.2, 1.2), rng.uniform(0.005, 0.025), rng.uniform(0, 2 * np.pi)
        f0 = f0_hz * (1.0 + depth * np.sin(2 * np.pi * rate * t_nominal + phase))
    else:
        f0 = np.interp(t_nominal, np.arange(len(f0_contour)) / fs, f0_contour)
    periods = (1.0 / f0) * (1.0 + jitter * to_sigma * rng.standard_normal(max_cycles))
    periods = np.maximum(periods, 0.3 / f0)
    amplitudes = np.maximum(1.0 + shimmer * to_sigma * rng.standard_normal(max_cycles), 0.1)
    # cycle k covers samples [bounds[k], bounds[k+1]); np.repeat labels each sample with its cycle
    bounds = np.round(np.concatenate([[0.0], np.cumsum(periods)]) * fs).astype(np.int64)
    n_cycles = int(np.searchsorted(bounds, n)) + 1
    lengths = np.diff(bounds[: n_cycles + 1])
    cycle = np.repeat(np.arange(n_cycles), lengths)[:n]
    phase = (np.arange(n) - bounds[cycle]) / (periods[cycle] * fs)
    # Rosenberg (1971) pulse: cosine opening over 60 % of the open phase, quarter-cosine closing over 40 %
    t_open, t_close = 0.6 * open_quotient, 0.4 * open_quotient
    flow = np.zeros(n)
    opening = phase < t_open
    closing = ~opening & (phase < open_quotient)
    flow[opening] = 0.5 * (1.0 - np.cos(np.pi / t_open * phase[opening]))
    flow[closing] = np.cos(0.5 * np.pi / t_close * (phase[closing] - t_open))
    return flow * amplitudes[cycle]


def formant_sos(
    fs: int, formants: tuple[float, ...], bandwidth_scale: float = 1.0, radiation: bool = False
) -> np.ndarray:
    """Second-order sections of a cascade of unity-DC-gain resonators (Klatt 1980 style).

    With ``radiation`` the first section also gets lip radiation's zero at z = 1 (a first difference),
    which saves a pass over the signal.
    """
    sections = []
    for i, (freq, bw) in enumerate(zip(formants, BANDWIDTHS_HZ, strict=False)):
        if freq >= 0.45 * fs:
            continue
        bw = bw * (bandwidth_scale if i == 0 else 1.0)
        r = math.exp(-math.pi * bw / fs)
        a1, a2 = -2.0 * r * math.cos(2 * math.pi * freq / fs), r * r
        sections.append([1.0 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    if radiation and sections:
        g = sections[0][0]
        sections[0][:3] = [g, -g, 0.0]
    return np.asarray(sections)


def radiate(x: np.ndarray) -> np.ndarray:
    """Lip radiation: a first difference (+6 dB/octave), keeping the length."""
    return np.diff(x, prepend=x[:1])


def _ramp(n: int, n_in: int, n_out: int) -> np.ndarray:
    env = np.ones(n)
    n_in, n_out = min(n_in, n // 2), min(n_out, n // 2)
    if n_in > 0:
        env[:n_in] = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_in) / n_in)
    if n_out > 0:
        env[n - n_out :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, n_out + 1) / n_out)
    return env


@functools.lru_cache(maxsize=64)
def bandpass_sos(fs: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Second-order Butterworth band-pass, designed once per (rate, band): design costs more than filtering."""
    return signal.butter(2, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")


@functools.lru_cache(maxsize=64)
def lowpass_sos(fs: int, cutoff_hz: float, order: int = 2) -> np.ndarray:
    return signal.butter(order, cutoff_hz, btype="lowpass", fs=fs, output="sos")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def phonate(
    n: int,
    fs: int,
    spec_f0: float,
    formants: list[tuple[tuple[float, ...], int, int]],
    jitter: float,
    shimmer: float,
    open_quotient: float,
    hnr_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One breath group: harmonic + aspiration parts through the tract, mixed at the requested HNR.

    ``formants`` lists (formant frequencies, start, stop) spans; samples outside every span are silent
    (the closures of a syllable train). HNR is set on the radiated output, where an estimator measures it.
    """
    flow = glottal_source(n, fs, spec_f0, jitter, shimmer, open_quotient, rng)
    # aspiration: turbulence at the glottis, strongest while the folds are open (pulsatile noise)
    breath = rng.standard_normal(n, dtype=np.float32) * (0.3 + flow / max(flow.max(), 1e-9))
    bw_scale = 1.0 + 1.5 * max(open_quotient - 0.55, 0.0)  # glottal losses widen F1 in breathy voice
    harmonic = np.zeros(n)
    noise = np.zeros(n)
    for freqs, start, stop in formants:
        sos = formant_sos(fs, freqs, bw_scale, radiation=True)
        harmonic[start:stop] = signal.sosfilt(sos, flow[start:stop])
        noise[start:stop] = signal.sosfilt(sos, breath[start:stop])
    voiced = np.zeros(n, dtype=bool)
    for _, start, stop in formants:
        voiced[start:stop] = True
    h_rms, n_rms = rms(harmonic[voiced]), rms(noise[voiced])
    noise *= h_rms / n_rms * 10.0 ** (-hnr_db / 20.0)
    return harmonic + noise


# ---------------------------------------------------------------------------------------------- clip


def _layout(
    spec: ClipSpec, rng: np.random.Generator
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Breath groups (voiced spans) and pauses between them, in seconds."""
    start, end = spec.lead_s, spec.duration_s - spec.tail_s
    voiced: list[tuple[float, float]] = []
    pauses: list[tuple[float, float]] = []
    t = start
    while end - t > 0.35:
        stop = min(t + spec.breath_group_s * rng.uniform(0.8, 1.2), end)
        if end - stop < 0.5:  # no breath for a tiny last bit: phonate to the end instead
            stop = end
        voiced.append((t, stop))
        if stop >= end:
            break
        pause = spec.pause_s * rng.uniform(0.8, 1.25)
        pauses.append((stop, min(stop + pause, end)))
        t = stop + pause
    return voiced, pauses


def _articulation(spec: ClipSpec, n: int, fs: int, rng: np.random.Generator, syllable_s: Range) -> list:
    """Formant spans for a breath group: one /a/ span, or CV syllables separated by closures."""
    scale = spec.formant_scale
    if spec.task == "vowel":
        return [(tuple(f * scale for f in VOWEL_FORMANTS[SUSTAINED_VOWEL]), 0, n)]
    spans = []
    pos, k = 0, int(rng.integers(len(SYLLABLE_VOWELS)))
    while pos < n:
        length = int(_uniform(rng, syllable_s) * fs)
        closure = int(rng.uniform(0.03, 0.06) * fs)
        start, stop = min(pos + closure, n), min(pos + length, n)
        if stop - start > int(0.05 * fs):
            vowel = SYLLABLE_VOWELS[k % len(SYLLABLE_VOWELS)]
            spans.append((tuple(f * scale for f in VOWEL_FORMANTS[vowel]), start, stop))
        pos, k = pos + length, k + 1
    return spans


def _bursts(spans: list, n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Plosive release bursts (/p t k/) just before each syllable's vowel."""
    out = np.zeros(n)
    for _, start, _stop in spans:
        length = int(rng.uniform(0.008, 0.018) * fs)
        begin = max(start - length, 0)
        if start - begin < 8:
            continue
        # place of articulation moves the burst's spectral peak (/p/ low, /t/ high, /k/ mid)
        centre = rng.uniform(1500.0, min(4500.0, 0.4 * fs))
        sos = formant_sos(fs, (centre,), bandwidth_scale=0.8 * centre / BANDWIDTHS_HZ[0])
        burst = signal.sosfilt(sos, rng.standard_normal(start - begin))
        out[begin:start] = burst * np.exp(-np.linspace(0.0, 4.0, start - begin))
    return out


def inhalation(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Audible inspiration: band-limited turbulence rising and falling over the pause (unit RMS)."""
    x = signal.sosfilt(bandpass_sos(fs, 400.0, 2800.0), rng.standard_normal(n))
    x *= np.sin(np.pi * np.arange(n) / max(n - 1, 1)) ** 2
    return x / rms(x)


def room_noise(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Pinkish background (a one-pole lowpass on white noise, plus some white), unit RMS."""
    white = rng.standard_normal(n, dtype=np.float32)
    x = signal.lfilter([0.05], [1.0, -0.95], white) + 0.1 * white
    return x / rms(x)


def render_clip(spec: ClipSpec, rng: np.random.Generator, syllable_s: Range = (0.18, 0.3)) -> np.ndarray:
    """Samples of one recording, float64 in [-1, 1], shape (frames, channels)."""
    fs = spec.sample_rate
    n_total = round(spec.duration_s * fs)
    voice = np.zeros(n_total)
    voiced_mask = np.zeros(n_total, dtype=bool)
    voiced_spans, pauses = _layout(spec, rng)
    for t0, t1 in voiced_spans:
        a, b = int(t0 * fs), min(int(t1 * fs), n_total)
        n = b - a
        spans = _articulation(spec, n, fs, rng, syllable_s)
        part = phonate(
            n, fs, spec.f0_hz, spans, spec.jitter, spec.shimmer, spec.open_quotient, spec.hnr_db, rng
        )
        if spec.task == "syllables":
            part = part + _bursts(spans, n, fs, rng) * 0.5 * rms(part)
        # soft onset/offset of phonation; breathy, weak voices also fade a little through the group
        decay = np.linspace(1.0, 1.0 - 0.3 * spec.severity, n)
        voice[a:b] = part * _ramp(n, int(0.05 * fs), int(0.08 * fs)) * decay
        voiced_mask[a:b] = True
    voice_level = 10.0 ** ((spec.voice_dbfs + spec.level_db) / 20.0)
    voice *= voice_level / rms(voice[voiced_mask])
    for t0, t1 in pauses:
        a, b = int(t0 * fs), min(int(t1 * fs), n_total)
        if b - a > 16:
            voice[a:b] += inhalation(b - a, fs, rng) * voice_level * 10.0 ** (spec.inhalation_db / 20.0)

    background = 10.0 ** (spec.background_dbfs / 20.0)
    channels = []
    for c in range(spec.channels):
        if c == 0:
            x = voice
        else:
            # a second microphone: slightly delayed and attenuated copy (phones record stereo this way)
            delay = int(rng.integers(0, 12))
            x = np.concatenate([np.zeros(delay), voice[: n_total - delay]]) * rng.uniform(0.8, 1.0)
        channels.append(x + background * room_noise(n_total, fs, rng))
    out = np.stack(channels, axis=1) * 10.0 ** (spec.gain_db / 20.0)
    peak = float(np.max(np.abs(out)))
    if peak > 0.98:  # a phone's limiter: never clip the PCM16 range
        out *= 0.98 / peak
    return out
