"""The GPU benchmark's own logic, run on the CPU: the table, the recommended batch, a clear refusal."""

from __future__ import annotations

import torch

from benchmarks import gpu


def test_the_recommended_batch_is_the_smallest_within_10_percent_of_the_best() -> None:
    rates = {1: 300.0, 8: 2_000.0, 32: 5_600.0, 64: 6_000.0, 128: 6_100.0, 256: 5_900.0}
    assert gpu.recommend(rates) == 32  # the bar is 0.9 × 6,100 = 5,490: 32 clears it, 8 does not
    assert gpu.recommend({1: 10.0, 2: 9.5}) == 1  # larger batches that gain nothing are not chosen


def test_the_benchmark_measures_each_batch_through_the_serving_model_and_recommends_one(capsys) -> None:
    assert gpu.main(["--device", "cpu", "--batches", "2,1", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "2"]
    assert float(out.split("parity with the CPU ", 1)[1].split()[0]) <= 1e-5
    assert "Recommended max batch: " in out


def test_asking_for_cuda_without_a_gpu_exits_2_with_a_reason(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
