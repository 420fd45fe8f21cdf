"""Synthetic SPIRA-like data: source-filter voices with respiratory-insufficiency markers, ward noise."""

from training.data.synth.build import SynthResult, synthesize
from training.data.synth.params import SynthParams

__all__ = ["SynthParams", "SynthResult", "synthesize"]
