"""The server hands its spool writes to the uploader process over a local socket (serving/spool_link.py):
the uploader's Spool writes each item durably and confirms it; when the uploader is not there, goes away
before confirming, never answers, or is another user, the server writes the same item itself."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serving import spool_link
from serving.archive import Spool, decode_item
from serving.spool_link import SpoolLink, SpoolService, socket_name
from tests.fakes.serving import RecordingMetrics

AUDIO = bytes(range(256)) * 2000  # half a megabyte, like a 5.7 s upload


@pytest.fixture
def compute():
    with ThreadPoolExecutor(1, thread_name_prefix="compute") as pool:
        yield pool


def uploader_service(root: Path, max_spool_bytes: int = 2**40) -> SpoolService:
    return SpoolService(Spool(root, RecordingMetrics(), max_spool_bytes=max_spool_bytes, owner="pod")).start()


def items(folder: Path) -> dict[str, tuple[bytes, dict]]:
    found = {}
    for path in folder.glob("*.spool"):
        audio, _, record = decode_item(path.read_bytes())
        found[path.stem] = (audio, record)
    return found


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


def test_the_uploaders_service_writes_each_handed_upload_durably_and_the_server_writes_none(
    tmp_path: Path, compute
) -> None:
    service = uploader_service(tmp_path)
    server = Spool(tmp_path, RecordingMetrics(), owner="pod", handoff=True)
    try:
        drafts = [server.begin(AUDIO, compute) for _ in range(5)]
        assert all(d.handed for d in drafts)
        done = [server.finish(d, {"label": i}, f"{i}.wav") for i, d in enumerate(drafts)]
        assert [f.result(10) for f in done] == [True] * 5
        written = items(tmp_path / "pod")
        assert sorted(written) == sorted(d.item for d in drafts)  # the server's names
        assert all(audio == AUDIO for audio, _ in written.values())
        assert sorted(r["answer"]["label"] for _, r in written.values()) == [0, 1, 2, 3, 4]
        assert server.groups == 0 and service.spool.groups >= 1  # the uploader's group commits wrote them
        assert server.pending() == 5 and server.link.handed == 5
    finally:
        server.stop()
        service.stop()


def test_with_no_uploader_listening_the_server_writes_its_uploads_itself(tmp_path: Path, compute) -> None:
    server = Spool(tmp_path, RecordingMetrics(), owner="pod", handoff=True)
    draft = server.begin(AUDIO, compute)
    assert not draft.handed
    assert server.finish(draft, {"label": 1}).result(10) is True
    assert server.groups == 1 and list(items(tmp_path / "pod")) == [draft.item]


def test_an_upload_whose_uploader_went_away_before_confirming_is_written_by_the_server_under_its_name(
    tmp_path: Path, compute
) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_name(tmp_path / "pod"))
    listener.listen(1)
    frames: list[int] = []

    def takes_the_upload_then_dies() -> None:
        conn, _ = listener.accept()
        for _ in range(2):  # BEGIN with the audio, FINISH with the record; then gone, no DONE
            frames.append(spool_link._read(conn)[0])
        conn.close()

    peer = threading.Thread(target=takes_the_upload_then_dies)
    peer.start()
    server = Spool(tmp_path, RecordingMetrics(), owner="pod", handoff=True)
    draft = server.begin(AUDIO, compute)
    assert draft.handed
    assert server.finish(draft, {"label": 0}, "a.wav").result(10) is True
    peer.join(5)
    listener.close()
    assert frames == [spool_link.BEGIN, spool_link.FINISH]
    written = items(tmp_path / "pod")
    assert list(written) == [draft.item] and written[draft.item][0] == AUDIO
    assert written[draft.item][1]["filename"] == "a.wav" and server.groups == 1


def test_an_uploader_that_never_confirms_is_given_up_after_the_links_timeout(tmp_path: Path, compute) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_name(tmp_path / "pod"))
    listener.listen(1)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    server = Spool(tmp_path, RecordingMetrics(), owner="pod", handoff=True)
    server.link = SpoolLink(server.folder, timeout_s=0.3)  # a stuck uploader, given up on quickly
    try:
        draft = server.begin(AUDIO, compute)
        assert draft.handed
        assert server.finish(draft, {"label": 0}).result(10) is True
        assert list(items(tmp_path / "pod")) == [draft.item] and server.groups == 1
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_a_rejected_upload_leaves_nothing_in_the_uploaders_spool(tmp_path: Path, compute) -> None:
    service = uploader_service(tmp_path)
    server = Spool(tmp_path, RecordingMetrics(), owner="pod", handoff=True)
    try:
        draft = server.begin(AUDIO, compute)
        assert draft.handed
        server.abandon(draft)
        # the uploader wrote the draft and removes it again
        after = server.begin(b"next" * 10, compute)
        assert server.finish(after, {"label": 1}).result(10) is True
        wait_for(lambda: not list((tmp_path / "pod").glob("*.tmp")))
        assert list(items(tmp_path / "pod")) == [after.item]
    finally:
        server.stop()
        service.stop()


def test_an_upload_the_uploaders_spool_cannot_take_is_dropped_and_counted_by_the_server(
    tmp_path: Path, compute
) -> None:
    service = uploader_service(tmp_path, max_spool_bytes=1)  # its disk "full"
    metrics = RecordingMetrics()
    server = Spool(tmp_path, metrics, owner="pod", handoff=True)
    try:
        draft = server.begin(AUDIO, compute)
        assert draft.handed
        assert server.finish(draft, {"label": 0}).result(10) is False
        assert server.dropped == 1 and server.last_error == "spool full" and metrics.archive["dropped"] == 1
        assert not items(tmp_path / "pod")
    finally:
        server.stop()
        service.stop()


def test_a_peer_running_as_another_user_is_refused_and_the_server_writes_itself(
    tmp_path: Path, compute, monkeypatch
) -> None:
    real_uid = spool_link.os.getuid()
    monkeypatch.setattr(spool_link.os, "getuid", lambda: real_uid + 1)  # the service sees a stranger
    service = uploader_service(tmp_path)
    server = Spool(tmp_path, RecordingMetrics(), owner="pod", handoff=True)
    try:
        draft = server.begin(AUDIO, compute)
        # connected before the refusal: the audio may have gone, but nothing is confirmed
        assert server.finish(draft, {"label": 0}).result(10) is True
        wait_for(lambda: service.refused == 1)
        assert service.spool.groups == 0 and list(items(tmp_path / "pod")) == [draft.item]
    finally:
        server.stop()
        service.stop()


def test_each_pod_folder_has_its_own_socket(tmp_path: Path) -> None:
    assert socket_name(tmp_path / "a") != socket_name(tmp_path / "b")
    assert socket_name(tmp_path / "a") == socket_name(tmp_path / "." / "a")
