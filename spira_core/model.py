"""SpiraConvV2 (Casanova et al. 2021) and the model bundle that carries it to serving.

    bundle = load_bundle(directory)               # weights + FeatureParams + threshold + metadata
    p = bundle.predict_waveform(wav_16k)          # a file's probability of respiratory insufficiency
    label = int(p >= bundle.threshold)

A bundle is a directory of plain files (no pickled code): `bundle.json` (architecture, threshold, metadata),
`feature_params.json`, `weights.json` (tensor index) and `weights.bin` (raw little-endian float32), plus,
from bundles trained since input monitoring, `drift_reference.json` (training's MFCC histogram per
coefficient, spira_core.monitoring; older bundles have none and still load). Writing the same weights twice
gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spira_core import features as F
from spira_core import windows as W
from spira_core.monitoring import DriftReference
from spira_core.params import FeatureParams

BUNDLE_FORMAT = "spira-bundle/1"
ARCHITECTURE = "SpiraConvV2"
FC1_DIM = 100
DROPOUT = 0.7
DRIFT_REFERENCE_FILE = "drift_reference.json"


class BundleError(ValueError):
    """A bundle directory that is incomplete, inconsistent or of another format."""


class SpiraConvV2(nn.Module):
    """Input [B, T, F] → probability [B, 1].

    Four conv blocks over time only (kernels (7,1), (5,1), (3,1), (2,1); channels 32/16/8/4; dilation (2,1)
    on the first three), each GroupNorm (16/8/4/2 groups) → Mish → [MaxPool (2,1) on the first three] →
    Dropout 0.7; then flatten → Linear(100) → Mish → Dropout → Linear(1) → sigmoid. The flatten size comes
    from a dry run on the input length, so it follows the window (or padding) length.

    Before the first conv the input passes a fixed per-coefficient affine, (x − input_mean) · input_scale,
    held in buffers (saved with the weights, not trained, not counted as parameters). It is the identity
    unless training set it from the training data (`set_input_standardization`, preset option
    `standardize_input`; SPIRA fed raw MFCCs, so its presets keep the identity).
    """

    def __init__(
        self, input_frames: int, n_features: int = 40, fc1_dim: int = FC1_DIM, dropout: float = DROPOUT
    ):
        super().__init__()
        self.input_frames = int(input_frames)
        self.n_features = int(n_features)
        self.register_buffer("input_mean", torch.zeros(self.n_features))
        self.register_buffer("input_scale", torch.ones(self.n_features))
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=(7, 1), dilation=(2, 1)),
            nn.GroupNorm(16, 32),
            nn.Mish(),
            nn.MaxPool2d(kernel_size=(2, 1)),
            nn.Dropout(p=dropout),
            nn.Conv2d(32, 16, kernel_size=(5, 1), dilation=(2, 1)),
            nn.GroupNorm(8, 16),
            nn.Mish(),
            nn.MaxPool2d(kernel_size=(2, 1)),
            nn.Dropout(p=dropout),
            nn.Conv2d(16, 8, kernel_size=(3, 1), dilation=(2, 1)),
            nn.GroupNorm(4, 8),
            nn.Mish(),
            nn.MaxPool2d(kernel_size=(2, 1)),
            nn.Dropout(p=dropout),
            nn.Conv2d(8, 4, kernel_size=(2, 1), dilation=(1, 1)),
            nn.GroupNorm(2, 4),
            nn.Mish(),
            nn.Dropout(p=dropout),
        )
        with torch.no_grad():
            out = self.conv(torch.zeros(1, 1, self.input_frames, self.n_features))
        if out.shape[2] < 1:
            raise ValueError(f"input of {input_frames} frames is too short for SpiraConvV2")
        self.flatten_dim = int(out.shape[1] * out.shape[2] * out.shape[3])
        self.fc1 = nn.Linear(self.flatten_dim, fc1_dim)
        self.mish = nn.Mish()
        self.dropout = nn.Dropout(p=dropout)
        self.fc2 = nn.Linear(fc1_dim, 1)

    @torch.no_grad()
    def set_input_standardization(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Standardise each input coefficient with training-data statistics: (x − mean) / std."""
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean.shape != (self.n_features,) or std.shape != (self.n_features,):
            raise ValueError(
                f"expected {self.n_features} means and deviations, got {mean.shape}, {std.shape}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("input statistics must be finite, with positive deviations")
        self.input_mean.copy_(torch.from_numpy(mean))
        self.input_scale.copy_(torch.from_numpy(1.0 / std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.input_mean) * self.input_scale  # exact identity with the default buffers
        x = self.conv(x.unsqueeze(1))  # [B, C, T', F]
        x = x.transpose(1, 2).contiguous()  # [B, T', C, F], SPIRA's flatten order
        x = x.view(x.size(0), -1)
        x = self.dropout(self.mish(self.fc1(x)))
        return torch.sigmoid(self.fc2(x))


def build_model(params: FeatureParams) -> SpiraConvV2:
    return SpiraConvV2(input_frames=params.input_frames, n_features=params.n_mfcc)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_digest(model: nn.Module) -> str:
    """sha256 of the state dict's names, shapes and bytes: equal digests mean equal weights."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        arr = tensor.detach().cpu().contiguous().numpy()
        h.update(f"{name}:{arr.dtype}:{arr.shape};".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


@torch.no_grad()
def predict_windows(model: nn.Module, windows: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities for inputs [N, W, F] → float64 [N] (eval mode, no dropout), on the model's device."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        out = [
            model(
                torch.from_numpy(np.ascontiguousarray(windows[i : i + batch_size], dtype=np.float32)).to(
                    device
                )
            )
            .reshape(-1)
            .cpu()
            .double()
            .numpy()
            for i in range(0, len(windows), batch_size)
        ]
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


@dataclass
class ModelBundle:
    model: SpiraConvV2
    params: FeatureParams
    threshold: float = 0.5
    metadata: dict[str, Any] = field(default_factory=dict)
    # training's MFCC histogram, the reference of serving's drift score (None: a bundle from before it)
    drift_reference: DriftReference | None = None

    def predict_features(self, feats: np.ndarray) -> float:
        """A file's probability from its feature frames [T, F]: the mean over its windows."""
        return W.aggregate(predict_windows(self.model, W.file_windows(feats, self.params)))

    def predict_waveform(self, wav: np.ndarray) -> float:
        """A file's probability from mono audio already at params.sample_rate (see spira_core.audio)."""
        return self.predict_features(F.mfcc(wav, self.params))


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()


def save_bundle(bundle: ModelBundle, directory: str | Path) -> Path:
    """Write the bundle's files into `directory` (created if needed); same weights → same bytes."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    index, blobs, offset = [], [], 0
    for name, tensor in bundle.model.state_dict().items():
        arr = tensor.detach().cpu().contiguous().numpy().astype("<f4")
        raw = arr.tobytes()
        index.append({"name": name, "shape": list(arr.shape), "offset": offset, "nbytes": len(raw)})
        blobs.append(raw)
        offset += len(raw)
    weights = b"".join(blobs)
    _write(out / "weights.bin", weights)
    _write(out / "weights.json", _json_bytes({"dtype": "<f4", "tensors": index}))
    _write(out / "feature_params.json", bundle.params.to_json().encode())
    if bundle.drift_reference is not None:
        _write(out / DRIFT_REFERENCE_FILE, _json_bytes(bundle.drift_reference.to_dict()))
    _write(
        out / "bundle.json",
        _json_bytes(
            {
                "format": BUNDLE_FORMAT,
                "architecture": ARCHITECTURE,
                "input_frames": bundle.model.input_frames,
                "n_features": bundle.model.n_features,
                "threshold": float(bundle.threshold),
                "weights_sha256": hashlib.sha256(weights).hexdigest(),
                "metadata": bundle.metadata,
            }
        ),
    )
    return out


def bundle_digest(directory: str | Path) -> str:
    """sha256 over every file of a bundle directory (relative path and bytes): the identity a model pin
    records, the publish stage stores the bundle under, and every build and server checks."""
    root = Path(directory)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def load_bundle(directory: str | Path) -> ModelBundle:
    """Read a bundle written by `save_bundle`, checking format, architecture, sizes and the weights hash."""
    src = Path(directory)
    try:
        meta = json.loads((src / "bundle.json").read_text())
        params = FeatureParams.from_json((src / "feature_params.json").read_text())
        index = json.loads((src / "weights.json").read_text())
        weights = (src / "weights.bin").read_bytes()
    except FileNotFoundError as exc:
        raise BundleError(f"incomplete model bundle in {src}: {exc.filename} is missing") from exc
    if meta.get("format") != BUNDLE_FORMAT or meta.get("architecture") != ARCHITECTURE:
        raise BundleError(f"{src}: unsupported bundle {meta.get('format')}/{meta.get('architecture')}")
    if hashlib.sha256(weights).hexdigest() != meta.get("weights_sha256"):
        raise BundleError(f"{src}: weights.bin does not match the hash recorded in bundle.json")
    model = SpiraConvV2(input_frames=int(meta["input_frames"]), n_features=int(meta["n_features"]))
    if model.input_frames != params.input_frames or model.n_features != params.n_mfcc:
        raise BundleError(f"{src}: model input size disagrees with feature_params.json")
    state = {}
    for entry in index["tensors"]:
        raw = weights[entry["offset"] : entry["offset"] + entry["nbytes"]]
        state[entry["name"]] = torch.from_numpy(
            np.frombuffer(raw, dtype="<f4").reshape(entry["shape"]).copy()
        )
    # bundles written before the input standardisation existed carry no buffers for it: the identity
    for name in ("input_mean", "input_scale"):
        state.setdefault(name, model.state_dict()[name])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{src}: weights do not fit SpiraConvV2: {exc}") from exc
    model.eval()
    return ModelBundle(
        model=model,
        params=params,
        threshold=float(meta["threshold"]),
        metadata=meta["metadata"],
        drift_reference=_drift_reference(src, params),
    )


def _drift_reference(src: Path, params: FeatureParams) -> DriftReference | None:
    """The bundle's drift reference, or None when it has none (bundles older than input monitoring)."""
    path = src / DRIFT_REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        reference = DriftReference.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{src}: {DRIFT_REFERENCE_FILE} is not a drift reference: {exc}") from exc
    if reference.coefficients != params.n_mfcc:
        raise BundleError(
            f"{src}: {DRIFT_REFERENCE_FILE} has {reference.coefficients} coefficients, the model {params.n_mfcc}"
        )
    return reference
