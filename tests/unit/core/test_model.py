from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from spira_core.model import (
    BundleError,
    ModelBundle,
    SpiraConvV2,
    build_model,
    count_parameters,
    load_bundle,
    save_bundle,
    weights_digest,
)
from spira_core.params import FeatureParams

# conv 256+2576+392+68, GroupNorm 64+32+16+8, fc1 4*43*40*100+100, fc2 101
SPIRACONV_V2_PARAMETERS_4S = 691_613


def test_spiraconv_v2_for_a_4_second_window_has_691613_parameters():
    model = build_model(FeatureParams())
    assert model.input_frames == 401
    assert model.flatten_dim == 4 * 43 * 40
    assert count_parameters(model) == SPIRACONV_V2_PARAMETERS_4S


def test_the_flatten_size_follows_the_window_length():
    short = build_model(FeatureParams(window_s=2.0))
    padded = build_model(FeatureParams(temporal_mode="padding", max_len_s=8.0))
    assert short.flatten_dim < SpiraConvV2(401).flatten_dim < padded.flatten_dim
    x = torch.zeros(3, short.input_frames, 40)
    assert short(x).shape == (3, 1)


def test_the_network_maps_windows_to_probabilities():
    torch.manual_seed(0)
    model = build_model(FeatureParams()).eval()
    out = model(torch.randn(5, 401, 40))
    assert out.shape == (5, 1)
    assert ((out > 0) & (out < 1)).all()


def test_the_same_seed_builds_the_same_weights_and_another_seed_does_not():
    digests = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        digests.append(weights_digest(build_model(FeatureParams())))
    assert digests[0] == digests[1] != digests[2]


def test_a_bundle_round_trips_weights_params_threshold_and_metadata(tmp_path):
    torch.manual_seed(3)
    params = FeatureParams(window_s=3.0, step_s=0.5)
    bundle = ModelBundle(build_model(params), params, threshold=0.42, metadata={"dataset": "abc"})
    save_bundle(bundle, tmp_path / "a")
    loaded = load_bundle(tmp_path / "a")
    assert loaded.params == params
    assert loaded.threshold == 0.42 and loaded.metadata == {"dataset": "abc"}
    assert weights_digest(loaded.model) == weights_digest(bundle.model)
    feats = np.random.default_rng(0).standard_normal((700, 40)).astype(np.float32)
    assert loaded.predict_features(feats) == pytest.approx(bundle.predict_features(feats))
    # writing the same bundle again gives byte-identical files
    save_bundle(loaded, tmp_path / "b")
    for name in ("weights.bin", "weights.json", "feature_params.json", "bundle.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_bundle_with_tampered_weights_is_refused(tmp_path):
    params = FeatureParams()
    save_bundle(ModelBundle(build_model(params), params), tmp_path)
    raw = bytearray((tmp_path / "weights.bin").read_bytes())
    raw[0] ^= 0xFF
    (tmp_path / "weights.bin").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="hash"):
        load_bundle(tmp_path)


def test_a_bundle_whose_params_disagree_with_the_model_is_refused(tmp_path):
    params = FeatureParams()
    save_bundle(ModelBundle(build_model(params), params), tmp_path)
    (tmp_path / "feature_params.json").write_text(FeatureParams(window_s=2.0).to_json())
    with pytest.raises(BundleError, match="disagrees"):
        load_bundle(tmp_path)


def test_an_incomplete_bundle_names_the_missing_file(tmp_path):
    params = FeatureParams()
    save_bundle(ModelBundle(build_model(params), params), tmp_path)
    (tmp_path / "weights.json").unlink()
    with pytest.raises(BundleError, match=r"weights\.json"):
        load_bundle(tmp_path)
    assert json.loads((tmp_path / "bundle.json").read_text())["architecture"] == "SpiraConvV2"


def test_the_input_standardisation_is_the_exact_identity_until_training_sets_it():
    torch.manual_seed(6)
    model = build_model(FeatureParams()).eval()
    assert torch.equal(model.input_mean, torch.zeros(40)) and torch.equal(model.input_scale, torch.ones(40))
    x = torch.randn(2, 401, 40) * 30
    with torch.no_grad():
        before = model(x)
        mean, std = np.linspace(-50, 50, 40), np.linspace(1, 40, 40)
        model.set_input_standardization(mean, std)
        standardised = model(x)
        model.set_input_standardization(np.zeros(40), np.ones(40))
        assert torch.equal(model(x), before)
        # the affine is applied to the input: the same as feeding standardised windows to the identity
        x_std = ((x.double() - torch.from_numpy(mean)) / torch.from_numpy(std)).float()
        assert torch.allclose(model(x_std), standardised, atol=1e-6)
    assert count_parameters(model) == SPIRACONV_V2_PARAMETERS_4S


@pytest.mark.parametrize("std", [np.zeros(40), np.full(40, np.nan), np.ones(39)])
def test_input_statistics_must_be_finite_positive_and_one_per_coefficient(std):
    with pytest.raises(ValueError):
        build_model(FeatureParams()).set_input_standardization(np.zeros(len(std)), std)


def test_a_bundle_keeps_the_input_standardisation_and_an_older_bundle_loads_as_identity(tmp_path):
    torch.manual_seed(7)
    params = FeatureParams()
    model = build_model(params).eval()
    model.set_input_standardization(np.arange(40.0), np.arange(1.0, 41.0))
    save_bundle(ModelBundle(model, params), tmp_path / "new")
    loaded = load_bundle(tmp_path / "new")
    assert torch.equal(loaded.model.input_mean, model.input_mean)
    assert torch.equal(loaded.model.input_scale, model.input_scale)
    # a bundle written before the buffers existed: the same files without their two tensors
    old = build_model(params).eval()
    out = tmp_path / "old"
    save_bundle(ModelBundle(old, params), out)
    index = json.loads((out / "weights.json").read_text())
    blob = (out / "weights.bin").read_bytes()
    kept = [t for t in index["tensors"] if not t["name"].startswith("input_")]
    raw, offset = b"", 0
    for t in kept:
        raw += blob[t["offset"] : t["offset"] + t["nbytes"]]
        t["offset"], offset = offset, offset + t["nbytes"]
    (out / "weights.json").write_text(json.dumps({"dtype": "<f4", "tensors": kept}))
    (out / "weights.bin").write_bytes(raw)
    meta = json.loads((out / "bundle.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(raw).hexdigest()
    (out / "bundle.json").write_text(json.dumps(meta))
    legacy = load_bundle(out)
    assert torch.equal(legacy.model.input_scale, torch.ones(40))
    x = torch.randn(2, 401, 40)
    with torch.no_grad():
        assert torch.equal(legacy.model(x), old(x))


def test_a_bundle_carries_its_drift_reference_as_a_plain_file_and_an_older_bundle_has_none(tmp_path):
    from spira_core.model import DRIFT_REFERENCE_FILE
    from spira_core.monitoring import DriftReference

    params = FeatureParams()
    frames = np.random.default_rng(1).normal(size=(400, params.n_mfcc))
    reference = DriftReference.from_frames(frames)
    save_bundle(ModelBundle(build_model(params), params, drift_reference=reference), tmp_path / "new")
    document = json.loads((tmp_path / "new" / DRIFT_REFERENCE_FILE).read_text())
    assert document["format"] == "spira-drift-reference/1" and document["frames"] == 400
    loaded = load_bundle(tmp_path / "new").drift_reference
    assert loaded is not None and np.array_equal(loaded.edges, reference.edges)
    save_bundle(ModelBundle(build_model(params), params), tmp_path / "old")
    assert not (tmp_path / "old" / DRIFT_REFERENCE_FILE).exists()
    assert load_bundle(tmp_path / "old").drift_reference is None


def test_a_drift_reference_for_another_number_of_coefficients_is_refused(tmp_path):
    from spira_core.model import DRIFT_REFERENCE_FILE
    from spira_core.monitoring import DriftReference

    params = FeatureParams()
    save_bundle(ModelBundle(build_model(params), params), tmp_path)
    wrong = DriftReference.from_frames(np.random.default_rng(1).normal(size=(400, 13)))
    (tmp_path / DRIFT_REFERENCE_FILE).write_text(json.dumps(wrong.to_dict()))
    with pytest.raises(BundleError, match="13 coefficients"):
        load_bundle(tmp_path)
