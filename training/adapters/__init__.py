"""Adapters for the training ports: S3 artifact store, MLflow registry, system clock and seeds."""
