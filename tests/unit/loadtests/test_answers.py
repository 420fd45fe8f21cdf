"""The serving contract's answer checks: what makes a 200 answer correct or not."""

from __future__ import annotations

import math

import pytest

from loadtests.answers import (
    BAD_LABEL,
    MALFORMED,
    PROBABILITY_OUT_OF_RANGE,
    WRONG_MODEL_VERSION,
    check_prediction,
    is_refusal,
)


def answer(**changes):
    body = {
        "probability": 0.42,
        "label": "control",
        "threshold": 0.5,
        "model_version": "v7",
        "windows": 2,
        "duration_s": 5.2,
        "sample_rate_in": 48000,
    }
    body.update(changes)
    return body


def test_a_contract_answer_with_the_expected_version_is_correct():
    assert check_prediction(answer(), "v7") == []


@pytest.mark.parametrize("probability", [0.0, 1.0, 1e-9])
def test_probabilities_on_the_bounds_of_zero_and_one_are_correct(probability):
    assert check_prediction(answer(probability=probability), "v7") == []


@pytest.mark.parametrize("probability", [1.5, -0.01, math.inf, math.nan])
def test_a_probability_outside_zero_one_is_out_of_range(probability):
    assert check_prediction(answer(probability=probability), "v7") == [PROBABILITY_OUT_OF_RANGE]


def test_a_label_other_than_patient_or_control_is_a_bad_label():
    assert check_prediction(answer(label="sick"), "v7") == [BAD_LABEL]


def test_another_model_version_than_the_expected_one_is_wrong():
    assert check_prediction(answer(model_version="v6"), "v7") == [WRONG_MODEL_VERSION]


def test_without_an_expected_version_any_version_string_is_accepted():
    assert check_prediction(answer(model_version="v6"), None) == []


@pytest.mark.parametrize(
    "body",
    [
        None,
        [0.4],
        "ok",
        answer(probability="0.4"),
        answer(probability=True),
        answer(threshold=None),
        answer(model_version=""),
        answer(windows=True),
        {k: v for k, v in answer().items() if k != "windows"},
    ],
)
def test_an_answer_missing_fields_or_of_the_wrong_types_is_malformed(body):
    assert MALFORMED in check_prediction(body, "v7")


def test_several_problems_are_all_reported_once():
    assert check_prediction(answer(probability=2.0, label="x", model_version="v1"), "v7") == sorted(
        [PROBABILITY_OUT_OF_RANGE, BAD_LABEL, WRONG_MODEL_VERSION]
    )


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        (400, True),
        (413, True),
        (415, True),
        (422, True),
        (200, False),
        (500, False),
        (0, False),
        (302, False),
    ],
)
def test_only_a_4xx_counts_as_refusing_a_broken_upload(status, refused):
    assert is_refusal(status) is refused
