"""The synthetic dataset: deterministic, in SPIRA's layout, and acoustically what it claims to be.

The acoustic checks use their own simple estimators (autocorrelation HNR, cycle periods from pulse onsets,
RMS), written here independently of the generator.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data import dataset_fingerprint, load_dataset_csv, load_noise_csv
from training.data.synth import SynthParams, synthesize
from training.data.synth.hospital import NOISE_KINDS, render_noise
from training.data.synth.voice import draw_clip_spec, glottal_source

# short clips keep the determinism tests to about a second; the acoustics tests use full-length ones
SMALL = {
    "n": 6,
    "n_noise": 4,
    "durations_s": (3.0, 4.0),
    "short_fraction": 0.0,
    "noise_durations_s": (1.0, 2.0),
}


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_same_seed_gives_byte_identical_files_and_another_seed_different_ones(tmp_path: Path) -> None:
    synthesize(SynthParams(seed=11, **SMALL), tmp_path / "a")
    synthesize(SynthParams(seed=11, **SMALL), tmp_path / "b")
    synthesize(SynthParams(seed=12, **SMALL), tmp_path / "c")
    a, b, c = (tree_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) == 6 + 4 + 2  # clips, noise clips, two CSVs
    differing = [name for name in a if name.endswith(".wav") and a[name] != c.get(name)]
    assert len(differing) == 10


def test_a_rerun_with_fewer_clips_leaves_no_stale_clip_behind(tmp_path: Path) -> None:
    synthesize(SynthParams(seed=1, **{**SMALL, "n": 5, "n_noise": 2}), tmp_path)
    synthesize(SynthParams(seed=1, **{**SMALL, "n": 3, "n_noise": 1}), tmp_path)
    assert len(list((tmp_path / "clips").glob("*.wav"))) == 3
    assert len(list((tmp_path / "noise").glob("*.wav"))) == 1


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 clips: enough for class means to separate, small enough for a unit test (a few seconds)."""
    out = tmp_path_factory.mktemp("synth")
    synthesize(SynthParams(n=40, seed=2024, n_noise=4, noise_durations_s=(1.0, 2.0)), out)
    return out


def test_the_dataset_loads_through_the_spira_csv_loader_with_both_classes_balanced(corpus: Path) -> None:
    examples = load_dataset_csv(corpus / "dataset.csv")
    assert len(examples) == 40
    assert sum(e.label for e in examples) == 20
    assert all(e.path.parent == (corpus / "clips").resolve() for e in examples)
    noises = load_noise_csv(corpus / "noise.csv")
    assert len(noises) == 4
    assert len(dataset_fingerprint(examples)) == 64


def test_recordings_are_pcm16_wav_at_phone_rates_and_spira_durations(corpus: Path) -> None:
    infos = [sf.info(e.path) for e in load_dataset_csv(corpus / "dataset.csv")]
    assert {i.format for i in infos} == {"WAV"}
    assert {i.subtype for i in infos} == {"PCM_16"}
    assert {i.samplerate for i in infos} <= {44_100, 48_000}
    assert {i.channels for i in infos} <= {1, 2}
    durations = np.array([i.duration for i in infos])
    assert durations.min() >= 2.7 and durations.max() <= 9.5
    assert np.mean(durations >= 4.0) >= 0.8  # most clips fill the pipeline's 4 s window


def mono(path: Path) -> tuple[np.ndarray, int]:
    x, fs = sf.read(path, dtype="float64", always_2d=True)
    return x[:, 0], fs


def frame_energies(x: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
    frames = x[: len(x) // frame * frame].reshape(-1, frame)
    return frames, np.mean(frames**2, axis=1)


def hnr_db(x: np.ndarray, fs: int) -> float:
    """Median harmonics-to-noise ratio of the loud frames, from the normalised autocorrelation peak
    (Boersma 1993: HNR = 10 log10(r / (1 - r)), window autocorrelation divided out)."""
    frames, energy = frame_energies(x, int(0.04 * fs))
    window = np.hanning(frames.shape[1])
    n_fft = 2 * frames.shape[1]
    window_ac = np.fft.irfft(np.abs(np.fft.rfft(window, n_fft)) ** 2)[: frames.shape[1]]
    lo, hi = int(fs / 400), int(fs / 70)  # lags of a 70-400 Hz voice
    values = []
    for f in frames[energy > 0.2 * energy.max()]:
        spectrum = np.fft.rfft((f - f.mean()) * window, n_fft)
        ac = np.fft.irfft(np.abs(spectrum) ** 2)[: frames.shape[1]]
        r = ac / ac[0] / (window_ac / window_ac[0])
        peak = min(float(r[lo:hi].max()), 0.9999)
        values.append(10 * np.log10(peak / (1 - peak)))
    return float(np.median(values))


def rms_dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2))))


def voiced_share(x: np.ndarray, fs: int) -> float:
    """Share of 20 ms frames within 20 dB of the loudest: phonation time over clip time."""
    _, energy = frame_energies(x, int(0.02 * fs))
    return float(np.mean(energy > energy.max() * 0.01))


def class_means(corpus: Path, measure) -> dict[int, float]:
    values: dict[int, list[float]] = {0: [], 1: []}
    for example in load_dataset_csv(corpus / "dataset.csv"):
        x, fs = mono(example.path)
        values[example.label].append(measure(x, fs))
    return {label: float(np.mean(v)) for label, v in values.items()}


def test_patients_are_breathier_with_a_lower_harmonics_to_noise_ratio(corpus: Path) -> None:
    means = class_means(corpus, hnr_db)
    assert means[0] - means[1] > 5.0, means
    assert means[0] > 12.0, means  # a healthy sustained vowel is clearly periodic


def test_patients_speak_more_softly(corpus: Path) -> None:
    means = class_means(corpus, lambda x, fs: rms_dbfs(x))
    assert means[0] - means[1] > 3.0, means


def test_patients_phonate_for_a_shorter_share_of_the_clip_with_breath_pauses(corpus: Path) -> None:
    means = class_means(corpus, voiced_share)
    assert means[0] - means[1] > 0.05, means


def test_the_classes_overlap_so_no_single_marker_separates_them_perfectly() -> None:
    params = SynthParams()
    specs = [
        draw_clip_spec(params, i, label, np.random.default_rng([3, i]))
        for i, label in enumerate([0, 1] * (params.n // 2))
    ]
    for marker in ("severity", "hnr_db", "jitter", "shimmer", "level_db"):
        controls = [getattr(s, marker) for s in specs if s.label == 0]
        patients = [getattr(s, marker) for s in specs if s.label == 1]
        # ranges of the two classes intersect: some control is more impaired than some patient
        low, high = (patients, controls) if marker in ("hnr_db", "level_db") else (controls, patients)
        assert max(low) > min(high), marker
    overlap = sum(s.severity > 0.5 for s in specs if s.label == 0) + sum(
        s.severity < 0.5 for s in specs if s.label == 1
    )
    assert 0 < overlap < 0.05 * len(specs)  # overlapping, yet learnable to well above 95 %


def cycle_estimates(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Periods (samples) between pulse onsets and each pulse's peak amplitude, read off the waveform."""
    onsets = np.flatnonzero((flow[1:] > 0) & (flow[:-1] == 0)) + 1
    periods = np.diff(onsets).astype(float)
    peaks = np.array([flow[a:b].max() for a, b in itertools.pairwise(onsets)])
    return periods, peaks


@pytest.mark.parametrize(("jitter", "shimmer"), [(0.005, 0.03), (0.03, 0.12)])
def test_the_glottal_source_has_the_requested_local_jitter_and_shimmer(jitter: float, shimmer: float) -> None:
    fs = 48_000
    flow = glottal_source(fs * 4, fs, 120.0, jitter, shimmer, 0.6, np.random.default_rng(0))
    periods, peaks = cycle_estimates(flow)
    local_jitter = np.mean(np.abs(np.diff(periods))) / np.mean(periods)
    local_shimmer = np.mean(np.abs(np.diff(peaks))) / np.mean(peaks)
    # onsets are whole samples: 1/400 of a period blurs the jitter reading of the steadier voice a little
    assert local_jitter == pytest.approx(jitter, rel=0.3, abs=0.002)
    assert local_shimmer == pytest.approx(shimmer, rel=0.2)
    assert 1 / np.mean(periods) * fs == pytest.approx(120.0, rel=0.05)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_each_hospital_noise_kind_renders_at_the_requested_level_without_clipping(kind: str) -> None:
    x = render_noise(kind, 2.0, 48_000, -30.0, np.random.default_rng(1))
    assert x.shape == (96_000,)
    assert rms_dbfs(x) == pytest.approx(-30.0, abs=0.5)
    # impulsive sounds cannot be that loud on average: the limiter keeps the peak below full scale
    loud = render_noise(kind, 2.0, 48_000, -6.0, np.random.default_rng(1))
    assert np.max(np.abs(loud)) <= 0.98
    assert rms_dbfs(loud) <= -6.0 + 1e-9


def test_monitor_beeps_peak_near_one_kilohertz_and_ventilation_hum_at_mains_frequency() -> None:
    fs = 48_000

    def peak_hz(x: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(x))
        return float(np.fft.rfftfreq(len(x), 1 / fs)[np.argmax(spectrum[1:]) + 1])

    beeps = render_noise("monitor_beeps", 3.0, fs, -20.0, np.random.default_rng(4))
    assert 650.0 <= peak_hz(beeps) <= 1250.0
    hum = render_noise("ventilation_hum", 3.0, fs, -20.0, np.random.default_rng(4))
    spectrum = np.abs(np.fft.rfft(hum))
    freqs = np.fft.rfftfreq(len(hum), 1 / fs)
    mains = [spectrum[np.argmin(np.abs(freqs - f))] for f in (50.0, 60.0)]
    assert max(mains) > 20 * np.median(spectrum[(freqs > 20) & (freqs < 2000)])
