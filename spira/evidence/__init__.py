"""Promotion evidence: each promotion's model card and gate reports, stored content-addressed in the object
store, attached to the MLflow version and named by a trailer on the promotion commit (docs/evidence.md)."""
