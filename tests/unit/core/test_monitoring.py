"""Input monitoring's pure measures: quality of one upload, PSI drift against training's MFCC histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spira_core.monitoring import (
    DriftReference,
    DriftWindow,
    input_quality,
    parse_sites,
    proportions,
    psi,
    site_label,
)

RATE = 16_000


def _voice(seconds: float = 3.0, rate: int = RATE, noise: float = 0.003, seed: int = 0) -> np.ndarray:
    """A voiced tone in steady noise, with a pause in the middle."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 180 * t) * (np.abs(t - seconds / 2) > 0.5)
    return (tone + noise * rng.standard_normal(len(t))).astype(np.float32)


def test_a_clean_recording_has_no_clipping_its_pause_as_silence_and_a_high_snr() -> None:
    q = input_quality(_voice(), RATE)
    assert q.duration_s == pytest.approx(3.0) and q.sample_rate == RATE
    assert q.clipping_ratio == 0.0
    assert 0.2 < q.silence_ratio < 0.45  # the one-second pause of three seconds
    assert q.snr_db > 30


def test_a_flat_topped_recording_reports_the_share_of_samples_at_its_peak_at_any_level() -> None:
    wav = _voice(noise=0.0)
    clipped = np.clip(wav, -0.1, 0.1)  # clipped well below full scale, as a gain stage would
    assert input_quality(clipped, RATE).clipping_ratio > 0.3
    assert input_quality(wav, RATE).clipping_ratio < 0.01


def test_louder_noise_lowers_the_snr_estimate_and_stereo_is_measured_too() -> None:
    quiet, loud = input_quality(_voice(noise=0.001), RATE), input_quality(_voice(noise=0.1), RATE)
    assert loud.snr_db < quiet.snr_db - 15
    stereo = np.stack([_voice(), _voice(seed=1)], axis=1)
    assert input_quality(stereo, RATE).duration_s == pytest.approx(3.0)


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift() -> None:
    expected = proportions(np.array([[10, 10, 10, 10]]))
    assert psi(expected, expected)[0] == pytest.approx(0.0)
    small = psi(expected, proportions(np.array([[12, 10, 9, 9]])))[0]
    large = psi(expected, proportions(np.array([[40, 0, 0, 0]])))[0]
    assert 0 < small < 0.05 < 1.0 < large


def test_psi_refuses_histograms_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="mismatched"):
        psi(np.ones((2, 3)) / 3, np.ones((2, 4)) / 4)


def _frames(n: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(shift, scale, size=(n, 5)) * np.arange(1, 6)


def test_the_reference_puts_training_frames_evenly_in_its_quantile_bins() -> None:
    ref = DriftReference.from_frames(_frames(5000, 0))
    assert ref.coefficients == 5 and ref.bins == 10 and ref.frames == 5000
    assert np.allclose(ref.expected, 0.1, atol=0.002)
    assert ref.score(ref.counts(_frames(5000, 0))) == pytest.approx(0.0, abs=1e-6)


def test_frames_like_training_score_near_zero_and_shifted_or_squeezed_frames_score_high() -> None:
    ref = DriftReference.from_frames(_frames(5000, 0))
    same = ref.score(ref.counts(_frames(2000, 1)))
    shifted = ref.score(ref.counts(_frames(2000, 1, shift=1.0)))
    squeezed = ref.score(ref.counts(_frames(2000, 1, scale=0.3)))
    assert same < 0.02
    assert shifted > 0.5 and squeezed > 0.5


def test_the_reference_round_trips_through_its_plain_document_and_refuses_another_format() -> None:
    ref = DriftReference.from_frames(_frames(500, 0))
    back = DriftReference.from_dict(ref.to_dict())
    assert np.array_equal(back.edges, ref.edges) and np.array_equal(back.expected, ref.expected)
    with pytest.raises(ValueError, match="format"):
        DriftReference.from_dict({**ref.to_dict(), "format": "other/9"})
    with pytest.raises(ValueError, match="do not fit"):
        DriftReference(ref.edges, ref.expected[:, :3], 1)


def test_counts_refuse_frames_with_another_number_of_coefficients() -> None:
    ref = DriftReference.from_frames(_frames(500, 0))
    with pytest.raises(ValueError, match="coefficients"):
        ref.counts(np.zeros((10, 7)))


def test_counts_put_each_value_in_the_bin_of_the_edges_at_or_below_it_ties_and_repeated_edges_included() -> (
    None
):
    edges = np.array([[-1.0, 0.0, 0.0, 2.0], [0.5, 1.0, 1.5, 3.0]])
    ref = DriftReference(edges, np.full((2, 5), 0.2), 100)
    rng = np.random.default_rng(3)
    frames = rng.normal(size=(400, 2)) * 2
    frames[:40] = edges.T[np.arange(40) % 4]  # values exactly at an edge belong to the bin above it
    frames[40:45] = [[-50.0, 90.0]]
    expected = np.zeros((2, 5), dtype=np.int64)
    for f in range(2):
        for value in frames[:, f]:
            expected[f, int(np.sum(edges[f] <= value))] += 1
    assert np.array_equal(ref.counts(frames), expected)
    assert ref.counts(frames).sum() == 2 * 400
    assert np.array_equal(ref.counts(frames[:0]), np.zeros((2, 5), dtype=np.int64))


def test_the_window_forgets_the_oldest_uploads_so_the_score_recovers_after_a_bad_stretch() -> None:
    ref = DriftReference.from_frames(_frames(5000, 0))
    window = DriftWindow(ref, uploads=4)
    assert math.isnan(window.score()) and len(window) == 0
    for seed in range(4):
        bad = window.add(ref.counts(_frames(300, seed, shift=2.0)))
    assert bad > 1.0
    for seed in range(4):
        good = window.add(ref.counts(_frames(300, 10 + seed)))
    assert len(window) == 4 and good < 0.05


def test_declared_sites_keep_their_name_unknown_ones_fold_into_other_and_none_is_unspecified() -> None:
    known = parse_sites(" HC-SP, hu-sp ,,other")
    assert known == ("hc-sp", "hu-sp")
    assert site_label("HC-SP ", known) == "hc-sp"
    assert site_label("a-new-clinic", known) == "other"
    assert site_label("", known) == site_label(None, known) == "unspecified"
