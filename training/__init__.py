"""Training side of SPIRA Platform: datasets, feature extraction, the stage pipeline and its adapters."""
