"""The hospital client against a flaky intake: retries 503 and dropped connections with backoff, takes a
4xx as the recording's answer, journals each answer, and a resumed run sends only what is not journaled."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from spira.loopback_http import LoopbackHttpServer
from spira.submit import Backoff, Journal, idempotency_key, submit


class FlakyIntake(LoopbackHttpServer):
    """Answers 503 to the first `fail_first` posts, refuses files named *bad*, accepts the rest by key."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.posts: list[str] = []  # idempotency keys, in order
        self.lock = threading.Lock()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["Content-Length"]))
        key = request.headers.get("Idempotency-Key", "")
        with self.lock:
            self.posts.append(key)
            failing = self.fail_first > 0
            self.fail_first -= 1
        if failing:
            status, answer = 503, {"error": "queue_unavailable", "detail": "restarting"}
        elif b'filename="bad' in body:
            status, answer = 422, {"error": "silent", "detail": "the recording is silent"}
        else:
            status, answer = (
                202,
                {"job_id": key[-32:], "status_url": f"/v1/jobs/{key[-32:]}", "status": "queued"},
            )
        data = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def _folder(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i in range(n):
        (folder / f"r{i:02d}.wav").write_bytes(f"recording {i}".encode())
    (folder / "bad.wav").write_bytes(b"silence")
    return folder


FAST = Backoff(first_s=0.01, max_s=0.02, give_up_after_s=10)


def test_unavailable_answers_are_retried_and_a_4xx_is_the_recordings_answer(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 5)
    with FlakyIntake(fail_first=4).start() as intake:
        journal = Journal(tmp_path / "j.jsonl")
        counts = submit(folder, intake.url, journal, concurrency=2, backoff=FAST)
    assert counts == {"accepted": 5, "rejected": 1, "skipped": 0}
    entries = journal.entries()
    assert entries["bad.wav"]["state"] == "rejected" and entries["bad.wav"]["error"] == "silent"
    assert len(intake.posts) == 6 + 4  # every recording once, plus the four answered 503


def test_a_resumed_client_sends_only_what_its_journal_lacks_under_the_same_keys(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 6)
    journal = Journal(tmp_path / "j.jsonl")
    with FlakyIntake().start() as intake:
        submit(folder, intake.url, journal, concurrency=1, backoff=FAST)
        lines = journal.path.read_text().splitlines()
        # a kill after three answers, the fourth line cut halfway
        journal.path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
        first = list(intake.posts)
        counts = submit(folder, intake.url, journal, concurrency=1, backoff=FAST)
    assert counts["skipped"] == 3 and counts["accepted"] + counts["rejected"] == 4
    resent = intake.posts[len(first) :]
    assert set(resent) <= set(first)  # the same keys again: the intake maps them to the same jobs
    assert sorted(journal.entries()) == sorted(p.name for p in folder.iterdir())


def test_a_recordings_key_follows_its_path_and_content() -> None:
    assert idempotency_key("a.wav", b"x") == idempotency_key("a.wav", b"x")
    assert (
        len({idempotency_key("a.wav", b"x"), idempotency_key("b.wav", b"x"), idempotency_key("a.wav", b"y")})
        == 3
    )


class RotatingCredential:
    """The hospital's credential: token t1 until invalidated, then t2 (a PredictCredential's interface)."""

    def __init__(self) -> None:
        self.issued = 1
        self.invalidated = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer t{self.issued}"}

    def invalidate(self) -> None:
        self.invalidated += 1
        self.issued += 1


class GuardedIntake(FlakyIntake):
    """Answers 401 expired_credential to any token but the current one (t2), as the intake does."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[str] = []

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        token = request.headers.get("Authorization", "")
        with self.lock:
            self.tokens.append(token)
        if token != "Bearer t2":
            request.rfile.read(int(request.headers["Content-Length"]))
            data = json.dumps({"error": "expired_credential", "detail": "fetch a new one"}).encode()
            request.send_response(401)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
            return
        super().handle(request)


def test_every_upload_carries_the_credential_and_an_expired_token_is_fetched_again(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 3)
    credential = RotatingCredential()
    with GuardedIntake().start() as intake:
        counts = submit(
            folder,
            intake.url,
            Journal(tmp_path / "j.jsonl"),
            concurrency=1,
            backoff=FAST,
            credential=credential,
        )
    assert counts == {"accepted": 3, "rejected": 1, "skipped": 0}
    assert credential.invalidated == 1 and intake.tokens[0] == "Bearer t1"
    assert intake.tokens[1:] == ["Bearer t2"] * 4
