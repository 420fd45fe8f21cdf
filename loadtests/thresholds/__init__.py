"""Versioned SLO thresholds, one YAML file per environment (a package so the files ship with it)."""
