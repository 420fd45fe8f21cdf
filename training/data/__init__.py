"""Datasets: SPIRA's CSV layout, stratified leak-free splits, and a synthetic SPIRA-like generator."""

from training.data.dataset import DatasetError, Example, dataset_fingerprint, load_dataset_csv, load_noise_csv
from training.data.splits import Splits, stratified_split

__all__ = [
    "DatasetError",
    "Example",
    "Splits",
    "dataset_fingerprint",
    "load_dataset_csv",
    "load_noise_csv",
    "stratified_split",
]
