"""Continuous training meets continuous delivery: the workflow's last step turns a newly registered
`candidate` into a GitHub `repository_dispatch` (event `spira-candidate`), and
.github/workflows/candidate.yml builds, tests by digest, sets the image on a branch and opens the pull
request to `staging`. Nobody types a command; the merge to `main` stays a human decision.

The decision is pure (`candidate_payload`); the dispatch is a small port whose real adapter posts to
GitHub with the repository and token of the training secret (`github_repository`,
`github_dispatch_token`, read from Vault at run time like every credential).
"""

from __future__ import annotations

import json
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

EVENT_TYPE = "spira-candidate"
GITHUB_API = "https://api.github.com"


class CandidateError(RuntimeError):
    pass


def candidate_payload(env: str, outcome: Mapping[str, Any]) -> dict[str, Any] | None:
    """The dispatch's client_payload when publish registered a new candidate in this run; None when it
    did not (not a candidate, or publish reused an output registered by an earlier run)."""
    publish = outcome.get("publish")
    stages = {s.get("stage"): s for s in outcome.get("stages", [])}
    if not publish or "publish" not in stages:
        raise CandidateError("the outcome has no publish stage (is it the publish step's --json-out?)")
    if stages["publish"].get("skipped") or not publish.get("candidate"):
        return None
    return {
        "environment": env,
        "model_name": str(publish["model_name"]),
        "model_version": str(publish["version"]),
        "publish_key": str(stages["publish"]["key"]),
    }


class Dispatcher(ABC):
    @abstractmethod
    def dispatch(self, event_type: str, payload: dict[str, Any]) -> None: ...


class GitHubDispatcher(Dispatcher):
    def __init__(self, repository: str, token: str, api: str = GITHUB_API, timeout_s: float = 30.0) -> None:
        self.url = f"{api}/repos/{repository}/dispatches"
        self.token = token
        self.timeout_s = timeout_s

    def dispatch(self, event_type: str, payload: dict[str, Any]) -> None:
        body = json.dumps({"event_type": event_type, "client_payload": payload}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                if response.status != 204:
                    raise CandidateError(f"GitHub answered {response.status} to {self.url}")
        except OSError as exc:
            raise CandidateError(f"dispatch to {self.url} failed: {exc}") from exc


def dispatcher_from_vault() -> Dispatcher:
    """The real adapter, from the training secret (VAULT_* of the step's container)."""
    from spira_core.settings import service_secret

    secret = service_secret("training")
    missing = [k for k in ("github_repository", "github_dispatch_token") if not secret.get(k)]
    if missing:
        raise CandidateError(f"the training secret lacks {', '.join(missing)}: no change can be opened")
    return GitHubDispatcher(secret["github_repository"], secret["github_dispatch_token"])


def dispatch_from_outcome(env: str, outcome: Mapping[str, Any], dispatcher: Dispatcher | None = None) -> str:
    payload = candidate_payload(env, outcome)
    if payload is None:
        return "no new candidate: nothing to deliver"
    (dispatcher or dispatcher_from_vault()).dispatch(EVENT_TYPE, payload)
    return f"dispatched {EVENT_TYPE}: {payload['model_name']} version {payload['model_version']} → staging"
