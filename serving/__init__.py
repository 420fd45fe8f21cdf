"""The SPIRA model service (BentoML): decode → shared features (spira_core) → model → answer.

serving/ never imports training/: everything it shares with training comes from spira_core, and the
model arrives as a bundle (weights + feature parameters + threshold) imported from the MLflow registry.
"""
