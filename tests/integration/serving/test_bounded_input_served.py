"""A real `bentoml serve` under 64 concurrent maximum-size uploads plus the FLAC bomb: every answer is a
2xx or a 4xx (busy ones with Retry-After), the bomb is refused, and the server still predicts afterwards.
The 256-upload run with its RSS figure is benchmarks/bounded_input.py; no timing or RSS is asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bounded_input import run

pytestmark = pytest.mark.integration


def test_sixty_four_maximum_size_uploads_and_the_flac_bomb_get_no_5xx_and_the_server_survives(
    tmp_path: Path,
) -> None:
    outcome = run(tmp_path, uploads=64)
    assert outcome.server_errors == 0, outcome.statuses
    assert all(200 <= status < 500 for status, _ in outcome.statuses), outcome.statuses
    assert outcome.busy_without_retry_after == 0
    assert outcome.bomb == (413, "too_many_samples")
    assert outcome.alive_after
    assert sum(n for (status, _), n in outcome.statuses.items() if status == 200) >= 1
