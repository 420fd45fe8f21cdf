"""The spool's writes handed to the uploader process: the server sends each upload over a local socket.

A durable write of a 0.55 MB upload costs the process that makes it ~0.6 ms of CPU on the build hosts (the
page-cache copy, the write-back, the journal: docs/performance.md), 6–7% of a served request, and its
cache misses slow the decode beside it. The uploader (`python -m serving.uploader`, the pod's sidecar, on
CPU of its own) owns the spool already, so it writes it too: the server sends the audio as the model starts
on it (`SpoolLink.begin`, on the compute thread), the answer's record once it is ready (`finish`), and
answers only when the uploader says the item is durable (`SpoolService`: its `Spool`, whose group commit
fsyncs the file, renames it complete and fsyncs the folder). The item's name and receipt time come from
the server, so the item is the same whoever writes it.

Nothing acknowledged is lost: the server keeps each upload's bytes until its DONE. When the uploader is not
listening, the connection breaks, or a DONE takes longer than `timeout_s`, the server's own `Spool` writes
the item (same name, same record), as it does with no uploader at all; it tries to connect again after
`RECONNECT_S`.

The socket is abstract (Linux), named after the pod's spool folder: the pod's containers share one network
namespace, and a peer running as another user is refused (SO_PEERCRED). Frames: op, JSON length, payload
length (`_FRAME`), the JSON, the payload (BEGIN's audio).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the service drives a Spool; archive.py imports this module
    from serving.archive import Draft, Spool

BEGIN, FINISH, ABANDON, DONE = 1, 2, 3, 4
_FRAME = struct.Struct("<BII")
# a DONE later than this after its FINISH was sent: the uploader is stuck, the server writes the item itself
LINK_TIMEOUT_S = 5.0
# after a failed connection, how long the server writes on its own before it tries the uploader again
RECONNECT_S = 1.0
# the server's send buffer: one upload's audio leaves in one or two wake-ups of the uploader
_SEND_BUFFER = 4 * 2**20


class LinkBroken(Exception):
    """The uploader did not confirm the item: the server writes it itself."""


def socket_name(folder: Path) -> str:
    """The abstract socket of the uploader that writes `folder` (one per pod folder, so local servers on
    one machine never meet)."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    return f"\0spira-spool-{digest}"


def _send(sock: socket.socket, op: int, meta: dict[str, object], payload: bytes = b"") -> None:
    head = json.dumps(meta).encode()
    sock.sendall(_FRAME.pack(op, len(head), len(payload)) + head)
    if payload:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if not n:
            return None
        got += n
    return bytes(buf)


def _read(sock: socket.socket) -> tuple[int, dict, bytes] | None:
    """One frame, or None when the peer closed the connection."""
    head = _recv_exact(sock, _FRAME.size)
    if head is None:
        return None
    op, meta_len, payload_len = _FRAME.unpack(head)
    meta = _recv_exact(sock, meta_len) if meta_len else b"{}"
    payload = _recv_exact(sock, payload_len) if payload_len else b""
    if meta is None or payload is None:
        return None
    return op, json.loads(meta), payload


class SpoolLink:
    """The server's side: hands uploads to the uploader's `SpoolService` while it listens."""

    def __init__(
        self,
        folder: Path,
        timeout_s: float = LINK_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = socket_name(folder)
        self.timeout_s = timeout_s
        self.clock = clock
        self._lock = threading.Lock()  # the connection's state
        self._send_lock = threading.Lock()  # one frame at a time on the wire
        self._sock: socket.socket | None = None
        self._retry_at = float("-inf")
        self._begun: dict[str, Future[None]] = {}  # items whose BEGIN went (or goes) on this connection
        self._waiting: dict[str, tuple[Future[tuple[bool, str]], float]] = {}  # FINISH sent: (DONE, since)
        self._small: ThreadPoolExecutor | None = None
        self.handed = 0  # items the uploader confirmed

    def begin(self, item: str, received: datetime, audio: bytes, sender: Executor) -> bool:
        """Send the upload's audio from `sender` (the compute thread: just before it decodes the same
        bytes); False when the uploader cannot take it now (the caller writes it itself)."""
        sock = self._connected()
        if sock is None:
            return False
        sent: Future[None] = Future()
        with self._lock:
            if self._sock is not sock:
                return False
            self._begun[item] = sent

        def send() -> None:
            try:
                with self._send_lock:
                    _send(sock, BEGIN, {"item": item, "received": received.isoformat()}, audio)
            except OSError as exc:
                self._break(sock)
                sent.set_exception(LinkBroken(f"sending the audio: {exc}"))
                return
            sent.set_result(None)

        sender.submit(send)
        return True

    def finish(
        self, item: str, answer: dict[str, object], filename: str, synthetic: bool
    ) -> Future[tuple[bool, str]]:
        """The record after the audio; resolves to (written, error) on the uploader's DONE, or raises
        LinkBroken when it will not come."""
        done: Future[tuple[bool, str]] = Future()
        with self._lock:
            sent, sock = self._begun.pop(item, None), self._sock
        if sent is None or sock is None:
            done.set_exception(LinkBroken("the connection that took the audio is gone"))
            return done
        meta = {"item": item, "answer": answer, "filename": filename, "synthetic": synthetic}

        def send(_: Future[None]) -> None:
            if sent.exception() is not None:
                done.set_exception(LinkBroken(str(sent.exception())))
                return
            with self._lock:
                if self._sock is not sock:
                    done.set_exception(LinkBroken("the connection broke before the record"))
                    return
                self._waiting[item] = (done, self.clock())
            try:
                with self._send_lock:
                    _send(sock, FINISH, meta)
            except OSError:
                self._break(sock)

        # after the audio, and never on the caller's thread (the event loop): a stalled uploader would stop it
        sent.add_done_callback(lambda f: self._small_sender().submit(send, f))
        return done

    def abandon(self, item: str) -> None:
        """The upload was rejected: the uploader drops its draft."""
        with self._lock:
            sent, sock = self._begun.pop(item, None), self._sock
        if sent is None or sock is None:
            return

        def send(_: Future[None]) -> None:
            if sent.exception() is None:
                with contextlib.suppress(OSError), self._send_lock:
                    _send(sock, ABANDON, {"item": item})

        sent.add_done_callback(lambda f: self._small_sender().submit(send, f))

    def close(self) -> None:
        with self._lock:
            sock = self._sock
        if sock is not None:
            self._break(sock)

    def _small_sender(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._small is None:
                self._small = ThreadPoolExecutor(1, thread_name_prefix="spira-spool-link")
            return self._small

    def _connected(self) -> socket.socket | None:
        with self._lock:
            if self._sock is not None:
                return self._sock
            if self.clock() < self._retry_at:
                return None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
                sock.settimeout(self.timeout_s)
                sock.connect(self.address)
            except OSError:  # nobody listens (no uploader, or not yet): write locally for a while
                sock.close()
                self._retry_at = self.clock() + RECONNECT_S
                return None
            self._sock = sock
        threading.Thread(
            target=self._read_done, args=(sock,), name="spira-spool-link-reader", daemon=True
        ).start()
        return sock

    def _read_done(self, sock: socket.socket) -> None:
        """The reader: each DONE resolves its item; silence past `timeout_s` with records waiting breaks
        the link (their items go to the server's own spool)."""
        sock_timeout = max(0.05, self.timeout_s / 4)
        reader = sock.dup()
        reader.settimeout(sock_timeout)
        try:
            while True:
                try:
                    frame = _read(reader)
                except TimeoutError:
                    with self._lock:
                        oldest = min((since for _, since in self._waiting.values()), default=None)
                    if oldest is not None and self.clock() - oldest > self.timeout_s:
                        break
                    continue
                except (OSError, ValueError):
                    break
                if frame is None:
                    break
                op, meta, _ = frame
                if op != DONE:
                    break
                with self._lock:
                    waiting = self._waiting.pop(str(meta.get("item")), None)
                if waiting is None:
                    continue
                if meta.get("local"):
                    waiting[0].set_exception(LinkBroken(str(meta.get("error", "the uploader had no draft"))))
                else:
                    self.handed += bool(meta.get("ok"))
                    waiting[0].set_result((bool(meta.get("ok")), str(meta.get("error") or "")))
        finally:
            reader.close()
            self._break(sock)

    def _break(self, sock: socket.socket) -> None:
        """This connection is done: every item still waiting on it is written by the server instead."""
        with self._lock:
            if self._sock is not sock:
                return
            self._sock = None
            self._retry_at = self.clock() + RECONNECT_S
            waiting, self._waiting = self._waiting, {}
            self._begun = {}
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        for done, _ in waiting.values():
            if not done.done():
                done.set_exception(LinkBroken("the connection to the uploader broke"))


class SpoolService:
    """The uploader's side: takes the uploads a server hands over into `spool` (its own `Spool` on the
    pod's folder, so its group commit writes them) and confirms each once durable."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._listener.bind(socket_name(spool.folder))
        self._listener.listen(16)
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.refused = 0

    def start(self) -> SpoolService:
        self._thread = threading.Thread(target=self._accept, name="spira-spool-service", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """No more hand-overs (the server writes what it still has itself)."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if not same_user(conn):
                self.refused += 1
                conn.close()
                continue
            self._connections.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), name="spira-spool-handoff", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        drafts: dict[str, Draft] = {}
        replies = threading.Lock()

        def reply(item: str, written: Future[bool]) -> None:
            ok = written.exception() is None and bool(written.result())
            meta = {"item": item, "ok": ok, "error": "" if ok else (self.spool.last_error or "not written")}
            with contextlib.suppress(OSError), replies:
                _send(conn, DONE, meta)

        try:
            while (frame := _read(conn)) is not None:
                op, meta, payload = frame
                item = str(meta["item"])
                if op == BEGIN:
                    received = datetime.fromisoformat(str(meta["received"]))
                    drafts[item] = self.spool.begin(payload, item=item, received=received)
                elif op == FINISH:
                    draft = drafts.pop(item, None)
                    if draft is None:  # never begun here: the server writes it
                        with contextlib.suppress(OSError), replies:
                            _send(conn, DONE, {"item": item, "ok": False, "local": True, "error": "no draft"})
                        continue
                    written = self.spool.finish(
                        draft, meta["answer"], str(meta["filename"]), bool(meta["synthetic"])
                    )
                    written.add_done_callback(lambda f, item=item: reply(item, f))
                elif op == ABANDON and item in drafts:
                    self.spool.abandon(drafts.pop(item))
        except (OSError, ValueError, KeyError):
            pass  # a broken or foreign peer: what it left is abandoned below
        finally:
            for draft in drafts.values():  # begun, never finished: the server writes those itself
                self.spool.abandon(draft)
            self._connections.discard(conn)
            conn.close()


def same_user(conn: socket.socket) -> bool:
    """Whether the peer of a UNIX socket runs as this process's user (SO_PEERCRED: pid, uid, gid)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return uid == os.getuid()
