"""Load tests and the promotion gate.

This package talks to the model server over HTTP only and imports no application code, so the same
files run from the repository, from CI and inside the small loadtest image that the AnalysisTemplate
Job uses. Only `locustfile.py` imports Locust (and with it gevent's monkey-patching); every other
module here is importable without Locust installed.
"""
