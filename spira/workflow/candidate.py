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


def train_key(train_outcome: Mapping[str, Any]) -> str:
    """The train stage's key from its step's outcome (where the bundle is in the object store)."""
    keys = [s["key"] for s in train_outcome.get("stages", []) if s.get("stage") == "train"]
    if not keys:
        raise CandidateError("the train outcome has no train stage (is it the train step's --json-out?)")
    return str(keys[0])


def model_pin(store: Any, key: str, name: str, version: str, run_id: str) -> dict[str, str]:
    """serving/model.lock.json for the candidate: the bundle's location in the object store and its
    sha256, computed from the stored files (what `spira bento fetch` checks in CI)."""
    import tempfile
    from pathlib import Path

    from spira_core.model import bundle_digest
    from training.artifacts import find_output

    output = find_output(store, "train", key)
    if output is None:
        raise CandidateError(f"train/{key} is not in the object store")
    folder = "model/"
    with tempfile.TemporaryDirectory() as tmp:
        for n in (n for n in output.manifest["files"] if n.startswith(folder)):
            path = Path(tmp) / n.removeprefix(folder)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(output.read(n))
        digest = bundle_digest(tmp)
    return {
        "bundle_key": f"train/{key}/model",
        "bundle_sha256": digest,
        "mlflow_version": version,
        "name": name,
        "resolved_from": "candidate",
        "run_id": run_id,
    }


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
        "run_id": str(publish.get("run_id", "")),
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


def dispatch_from_outcome(
    env: str,
    outcome: Mapping[str, Any],
    train_outcome: Mapping[str, Any],
    dispatcher: Dispatcher | None = None,
    store: Any = None,
) -> str:
    """Dispatch the candidate with its model pin (`pin` in the payload: the content of
    serving/model.lock.json); `store` is the training object store (from Vault when None)."""
    payload = candidate_payload(env, outcome)
    if payload is None:
        return "no new candidate: nothing to deliver"
    store = store if store is not None else store_from_vault()
    key = train_key(train_outcome)
    payload["pin"] = model_pin(store, key, payload["model_name"], payload["model_version"], payload["run_id"])
    (dispatcher or dispatcher_from_vault()).dispatch(EVENT_TYPE, payload)
    return f"dispatched {EVENT_TYPE}: {payload['model_name']} version {payload['model_version']} → staging"


def store_from_vault() -> Any:
    """The training object store, with the training secret's key (VAULT_* of the step's container)."""
    from training.adapters.s3 import S3ArtifactStore
    from training.wiring import load_settings

    s = load_settings()
    return S3ArtifactStore(s["s3_endpoint"], s["s3_access_key"], s["s3_secret_key"], s["features_bucket"])
