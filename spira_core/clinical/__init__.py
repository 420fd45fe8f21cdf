"""The clinical non-inferiority gate's domain: holdout manifests, metrics with bootstrap intervals, strata and
the verdict (pure: no I/O), and the reviewed margins per environment (`thresholds/<env>.yaml`).

Shared by training's publish stage (both bundles scored in-process), the `spira gate clinical` command and
the gate image's Job (both scoring over HTTP), so every place judges with the same code and the same file.
"""
