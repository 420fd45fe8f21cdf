"""Thresholds files: the packaged ones are valid; a broken one is refused with the field named."""

from __future__ import annotations

import copy

import pytest
import yaml

from loadtests import slo


def good() -> dict:
    return yaml.safe_load((slo.THRESHOLDS_DIR / "local.yaml").read_text())


def write(tmp_path, document) -> str:
    path = tmp_path / "t.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return str(path)


@pytest.mark.parametrize("env", slo.ENVIRONMENTS)
def test_every_packaged_environment_file_is_valid_and_names_its_environment(env):
    t = slo.load(env)
    assert t.environment == env
    assert t.schema_version == slo.SCHEMA_VERSION
    assert t.max_incorrect_answers == 0, "every environment demands every valid answer be correct"


def test_production_is_at_least_as_strict_as_staging_and_staging_as_local():
    local, staging, prod = (slo.load(e) for e in ("local", "staging", "production"))
    for looser, stricter in ((local, staging), (staging, prod)):
        assert stricter.latency_p95_ms <= looser.latency_p95_ms
        assert stricter.latency_p99_ms <= looser.latency_p99_ms
        assert stricter.max_error_ratio <= looser.max_error_ratio
        assert stricter.min_rps >= looser.min_rps
        assert stricter.min_checked_answers >= looser.min_checked_answers


def test_a_bare_environment_name_resolves_to_the_packaged_file_and_a_path_to_itself(tmp_path):
    assert slo.resolve("staging") == slo.THRESHOLDS_DIR / "staging.yaml"
    assert slo.resolve(tmp_path / "x.yaml") == tmp_path / "x.yaml"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["slo"].pop("latency_p95_ms"), "slo.latency_p95_ms"),
        (lambda d: d["slo"].update(latency_p95_ms=-1), "slo.latency_p95_ms"),
        (lambda d: d["slo"].update(max_error_ratio=1.5), "slo.max_error_ratio"),
        (lambda d: d["slo"].update(min_rps="fast"), "slo.min_rps"),
        (
            lambda d: d["slo"]["correctness"].update(max_incorrect_answers=0.5),
            "slo.correctness.max_incorrect_answers",
        ),
        (lambda d: d["slo"]["correctness"].pop("min_checked_answers"), "slo.correctness.min_checked_answers"),
        (lambda d: d["slo"].update(latency_p59_ms=100), "slo.latency_p59_ms"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.pop("load"), "load"),
        (lambda d: d["load"].update(users=0), "load.users"),
        (lambda d: d["slo"].update(latency_p99_ms=10), "slo.latency_p99_ms"),
    ],
)
def test_an_invalid_thresholds_file_is_refused_naming_the_offending_field(tmp_path, mutate, field):
    document = copy.deepcopy(good())
    mutate(document)
    with pytest.raises(slo.ThresholdsError) as caught:
        slo.load(write(tmp_path, document))
    assert caught.value.field == field
    assert f"'{field}'" in str(caught.value)


def test_every_offending_field_is_named_not_only_the_first(tmp_path):
    document = good()
    del document["slo"]["min_rps"]
    document["load"]["duration_s"] = -5
    with pytest.raises(slo.ThresholdsError) as caught:
        slo.load(write(tmp_path, document))
    assert set(caught.value.fields) == {"slo.min_rps", "load.duration_s"}


def test_a_file_that_is_not_yaml_is_refused_with_its_line(tmp_path):
    with pytest.raises(slo.ThresholdsError) as caught:
        slo.load(write(tmp_path, "slo: [unclosed\n  p95: 3\n"))
    assert caught.value.field.startswith("line ")


def test_a_missing_file_is_refused_as_unreadable(tmp_path):
    with pytest.raises(slo.ThresholdsError, match="cannot be read"):
        slo.load(tmp_path / "absent.yaml")


def test_a_yaml_scalar_instead_of_a_mapping_is_refused_at_the_root(tmp_path):
    with pytest.raises(slo.ThresholdsError) as caught:
        slo.load(write(tmp_path, "just a string\n"))
    assert caught.value.field == "<root>"


@pytest.mark.parametrize("env", slo.ENVIRONMENTS)
def test_each_packaged_file_renders_back_to_the_same_document_and_reads_back_equal(env):
    t = slo.load(env)
    assert slo.as_document(t) == yaml.safe_load(slo.resolve(env).read_text())
    assert slo.parse(slo.as_document(t), t.source) == t
