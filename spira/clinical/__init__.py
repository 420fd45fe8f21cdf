"""The clinical gate's entry points: `spira gate clinical` (HTTP scoring of a frozen holdout, verdict and
report), the champion's recorded result from MLflow, and `spira holdout freeze`. The judging itself is
spira_core.clinical, the same code training's publish stage runs."""
