from __future__ import annotations

import numpy as np
import pytest

from spira_core import windows as W
from spira_core.params import FeatureParams


def _frames(n: int) -> np.ndarray:
    # frame i holds the value i in every coefficient, so a window's first value is its start frame
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], 40, axis=1)


def test_overlapping_windows_are_4_seconds_long_and_start_every_second():
    p = FeatureParams()
    windows = W.file_windows(_frames(701), p)  # 7 s of frames
    assert windows.shape == (4, 401, 40)
    assert [int(w[0, 0]) for w in windows] == [0, 100, 200, 300]
    assert int(windows[-1, -1, 0]) == 700


def test_a_file_shorter_than_a_window_is_zero_padded_to_one_window():
    windows = W.file_windows(_frames(150), FeatureParams())
    assert windows.shape == (1, 401, 40)
    assert windows[0, 149, 0] == 149 and not windows[0, 150:].any()


def test_padding_mode_pads_or_cuts_every_file_to_the_maximum_length():
    p = FeatureParams(temporal_mode="padding", max_len_s=5.0)
    assert W.file_windows(_frames(300), p).shape == (1, 501, 40)
    assert W.file_windows(_frames(900), p).shape == (1, 501, 40)
    assert not W.file_windows(_frames(300), p)[0, 300:].any()


def test_random_mode_trains_on_one_window_and_infers_on_all():
    p = FeatureParams(temporal_mode="random")
    feats = _frames(1000)
    starts = {int(W.training_windows(feats, p, np.random.default_rng(s))[0, 0, 0]) for s in range(20)}
    assert len(starts) > 1 and all(0 <= s <= 599 for s in starts)
    assert W.file_windows(feats, p).shape[0] == len(W.window_starts(1000, p)) == 6


def test_a_files_probability_is_the_mean_of_its_windows():
    assert W.aggregate(np.array([0.2, 0.4, 0.9])) == pytest.approx(0.5)
    per_file = W.aggregate_by_file(np.array([0.1, 0.3, 1.0, 0.5, 0.6, 0.7]), [2, 1, 3])
    assert per_file == pytest.approx([0.2, 1.0, 0.6])
    with pytest.raises(ValueError):
        W.aggregate_by_file(np.array([0.1, 0.2]), [3])
    with pytest.raises(ValueError):
        W.aggregate(np.array([]))
