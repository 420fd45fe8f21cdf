"""Shared SPIRA code used by training and serving: audio, features, temporal windows, model, augmentation."""
