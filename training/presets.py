"""Named training presets: everything a pipeline run needs besides the data, declared once.

"exp3.5" is SPIRA's best experiment (Casanova et al. 2021, Experiments/configs/exp3.5.json): MFCC features,
4 s windows moved by 1 s, 3 hospital-noise clips added to controls and to patients, Adam lr 1e-3 with
weight decay 0.01, Noam warm-up over 1000 steps, batches of 5 files, 1000 epochs, seed 42, best checkpoint
by validation loss. "fast" keeps the model, features and windows, standardises the input and shrinks the
schedule for tests and demos on a 2-core machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from spira_core.augment import NoiseConfig
from spira_core.params import FeatureParams


class UnknownPreset(KeyError):
    pass


@dataclass(frozen=True)
class Preset:
    name: str
    features: FeatureParams = field(default_factory=FeatureParams)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    # noisy copies of each training file made by the features stage; epoch e trains on copy e mod n
    # (SPIRA drew fresh noise every epoch; a fixed pool keeps the features stage cacheable)
    train_noise_variants: int = 4
    # also train on the clean copy in the rotation (SPIRA always added noise; a model that never hears
    # clean audio scores clean files with a biased threshold)
    train_on_clean: bool = False
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 42
    epochs: int = 1000
    batch_files: int = 5
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    early_stop_epochs: int = 0  # 0 disables early stopping (SPIRA's exp3.5 setting)
    # validation scores, and the checkpoint keeps, an exponential moving average of the weights updated
    # after every optimiser step with this decay (0 disables it: SPIRA's setting, the raw weights)
    ema_decay: float = 0.0
    # standardise each MFCC coefficient with the training files' mean and deviation, a fixed affine saved
    # in the model (SPIRA fed raw MFCCs, whose coefficients differ in scale by 30x: c0 dominates the first
    # GroupNorm and the network learns slowly)
    standardize_input: bool = False
    threshold: float = 0.5
    # the fraction of training and validation recordings whose label is flipped (seeded) before training: 0
    # for every real run; `spira demo --degrade accuracy` trains its clinically worse candidate with 0.5
    # (labels that carry no information), a real training the clinical gate must block
    label_noise: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["split_fractions"] = list(self.split_fractions)
        return data

    def train_params(self) -> dict[str, Any]:
        """The subset that decides training's outcome (part of the train stage's key)."""
        keys = (
            "seed",
            "epochs",
            "batch_files",
            "learning_rate",
            "weight_decay",
            "warmup_steps",
            "early_stop_epochs",
            "threshold",
            "train_on_clean",
            "ema_decay",
            "standardize_input",
            "label_noise",
        )
        return {k: getattr(self, k) for k in keys}

    def with_overrides(self, **overrides: Any) -> Preset:
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


# same model, features and noise recipe; one random 4 s window per file and epoch (a quarter of the
# compute of all overlapping windows; inference still averages every window), epochs alternating clean and
# one noisy copy, input standardisation and a 3x higher peak learning rate than SPIRA's (on raw MFCCs the
# network needed 960 files and 17 min for 0.89-0.97 held-out accuracy; standardised, 168 files and ~6 min
# give 0.97-0.98), patience long enough for the validation loss's clean/noisy swings (docs/training.md)
_FAST = Preset(
    name="fast",
    features=FeatureParams(temporal_mode="random"),
    train_noise_variants=1,
    train_on_clean=True,
    epochs=60,
    batch_files=5,
    learning_rate=3e-3,
    warmup_steps=300,
    early_stop_epochs=30,
    standardize_input=True,
)

PRESETS: dict[str, Preset] = {
    "exp3.5": Preset(name="exp3.5"),
    "fast": _FAST,
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPreset(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
