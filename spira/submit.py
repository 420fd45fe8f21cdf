"""The hospital-side client of the burst path: `spira submit DIR --url URL`, `spira submit --results`.

A hospital's app keeps recordings while the network is down and sends them in a burst when it returns.
Every recording gets an idempotency key derived from its path and content, so a resend (a retry, a client
killed and started again, a journal line lost with the machine) names the same job, never a second one.
The journal (one JSON line per recording, appended and fsynced after the intake answered) is what a
resumed client skips. Network loss, 429 and 5xx answers are retried with exponential backoff and jitter;
any other 4xx is the recording's final answer (the intake refused it, as /predict would).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
DEFAULT_JOURNAL = Path(".spira-submit") / "journal.jsonl"
RETRIED_STATUSES = {408, 425, 429, 500, 502, 503, 504}


# a 401 with one of these codes: the credential is fetched anew and the request sent again (once per answer)
REFRESHED_CODES = {"expired_credential", "invalid_credential"}


class SubmitError(RuntimeError):
    pass


class Credential(Protocol):
    """The hospital's credential (spira_core.predict_credential.PredictCredential): headers for each
    request, fetched anew when the intake says the token expired."""

    def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


class _NoCredential(Exception):
    pass


def _auth_headers(credential: Credential | None) -> dict[str, str]:
    if credential is None:
        return {}
    try:
        return credential.headers()
    except Exception as exc:  # Vault unreachable or refusing: the same as a network loss, retried
        raise _NoCredential(str(exc)) from exc


def _expired(resp: requests.Response) -> bool:
    if resp.status_code != 401:
        return False
    try:
        return resp.json().get("error") in REFRESHED_CODES
    except ValueError:
        return False


def recordings(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def idempotency_key(relative: str, data: bytes) -> str:
    """One recording, one key: its path in the folder and its content (a renamed copy is another one)."""
    digest = hashlib.sha256(data).hexdigest()
    return "rec-" + hashlib.sha256(f"{relative}\0{digest}".encode()).hexdigest()[:48]


class Journal:
    """Append-only JSON lines, fsynced per line; the last line of a recording wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def entries(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        if not self.path.is_file():
            return out
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill: that recording is sent again, under the same key
            out[entry["file"]] = entry
        return out

    def append(self, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock, open(self.path, "a+b") as f:
            # a line a kill cut short stays alone on its line (skipped on reading), never glued to this one
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())


@dataclass
class Backoff:
    first_s: float = 0.2
    max_s: float = 10.0
    give_up_after_s: float = 600.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay * random.uniform(0.5, 1.0)
            delay = min(delay * 2, self.max_s)


def upload(
    session: requests.Session,
    url: str,
    path: Path,
    relative: str,
    site: str,
    backoff: Backoff,
    credential: Credential | None = None,
) -> dict:
    """POST one recording until the intake answers for it (202, or a final 4xx)."""
    data = path.read_bytes()
    key = idempotency_key(relative, data)
    started = time.monotonic()
    delays = backoff.delays()
    last = ""
    refreshed = False
    while True:
        try:
            resp = session.post(
                f"{url.rstrip('/')}/v1/recordings",
                files={"audio": (path.name, data, "application/octet-stream")},
                data={"site": site} if site else None,
                headers={"Idempotency-Key": key, **_auth_headers(credential)},
                timeout=30,
            )
            if _expired(resp) and credential is not None and not refreshed:
                credential.invalidate()  # a token that expired in flight: a new one, sent at once
                refreshed = True
                continue
            refreshed = False
            if resp.status_code == 202:
                body = resp.json()
                return {
                    "file": relative,
                    "key": key,
                    "job_id": body["job_id"],
                    "status_url": f"{url.rstrip('/')}{body['status_url']}",
                    "state": "accepted",
                }
            if resp.status_code not in RETRIED_STATUSES:
                try:
                    error = resp.json()
                except ValueError:
                    error = {"error": "http_error", "detail": resp.text[:200]}
                return {
                    "file": relative,
                    "key": key,
                    "state": "rejected",
                    "status": resp.status_code,
                    **error,
                }
            last = f"HTTP {resp.status_code}"
            retry_after = resp.headers.get("Retry-After")
            wait = float(retry_after) if retry_after and retry_after.isdigit() else next(delays)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last, wait = f"{type(exc).__name__}", next(delays)
        except _NoCredential as exc:
            last, wait = f"no credential: {exc}", next(delays)
        if time.monotonic() - started + wait > backoff.give_up_after_s:
            raise SubmitError(
                f"{relative}: no answer from {url} after {backoff.give_up_after_s:.0f}s ({last})"
            )
        time.sleep(wait)


def submit(
    folder: Path,
    url: str,
    journal: Journal,
    site: str = "",
    concurrency: int = 8,
    backoff: Backoff | None = None,
    say: Callable[[dict], None] = lambda _e: None,
    credential: Credential | None = None,
) -> dict[str, int]:
    """Send every recording of `folder` not yet in the journal; counts of what this run did."""
    backoff = backoff or Backoff()
    done = journal.entries()
    todo = [(p, p.relative_to(folder).as_posix()) for p in recordings(folder)]
    todo = [(p, rel) for p, rel in todo if rel not in done]
    counts = {"accepted": 0, "rejected": 0, "skipped": len(recordings(folder)) - len(todo)}
    local = threading.local()

    def one(item: tuple[Path, str]) -> dict:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        entry = upload(local.session, url, item[0], item[1], site, backoff, credential)
        journal.append(entry)
        say(entry)
        return entry

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for entry in pool.map(one, todo):
            counts[entry["state"]] += 1
    return counts


def results(
    journal: Journal, wait_s: float = 600.0, poll_s: float = 0.5, credential: Credential | None = None
) -> Iterator[dict]:
    """One line per journaled recording once its job finished (or the intake refused it), in file order."""
    entries = sorted(journal.entries().values(), key=lambda e: e["file"])
    session = requests.Session()
    deadline = time.monotonic() + wait_s
    for entry in entries:
        if entry["state"] == "rejected":
            yield {
                "file": entry["file"],
                "status": "rejected",
                "error": entry.get("error"),
                "detail": entry.get("detail"),
            }
            continue
        while True:
            answer = None
            try:
                resp = session.get(entry["status_url"], headers=_auth_headers(credential), timeout=10)
                if _expired(resp) and credential is not None:
                    credential.invalidate()
                elif resp.status_code in (401, 403):  # refused for good: polling would not change it
                    yield {
                        "file": entry["file"],
                        "job_id": entry["job_id"],
                        "status": "refused",
                        **resp.json(),
                    }
                    break
                answer = resp.json() if resp.status_code == 200 else None
            except (requests.ConnectionError, requests.Timeout, ValueError, _NoCredential):
                pass
            if answer is not None and answer["status"] in ("done", "failed"):
                yield {"file": entry["file"], **answer}
                break
            if time.monotonic() > deadline:
                yield {
                    "file": entry["file"],
                    "job_id": entry["job_id"],
                    "status": (answer or {}).get("status", "unknown"),
                }
                break
            time.sleep(poll_s)
