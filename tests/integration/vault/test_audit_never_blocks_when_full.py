"""Vault answers a request only when at least one audit device recorded it. With the clusters' audit
devices (infra/components/vault.py AUDIT_DEVICES: the file on its volume and stdout), a full audit
volume must not stop Vault. Proven on the real OpenBao server: the file device's file is swapped for
/dev/full (every write fails with ENOSPC, as on a full volume) and the server reopens it (SIGHUP, what a
rotation does); with the file device alone the next request fails, with the clusters' two it is answered."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import hvac
import pytest
import requests

from infra.components.vault import AUDIT_DEVICES

pytestmark = pytest.mark.integration
TOKEN = "audit-test-root"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def audit_config(devices: dict[str, str], audit_file: Path) -> str:
    """OpenBao's declarative audit stanzas for these devices, the file device's path moved to `audit_file`."""
    blocks = []
    for name, path in devices.items():
        target = path if path == "stdout" else str(audit_file)
        blocks.append(f'audit "file" "{name}" {{\n  options {{\n    file_path = "{target}"\n  }}\n}}\n')
    return "\n".join(blocks)


def answers_after_the_audit_volume_fills(devices: dict[str, str], tmp: Path) -> bool:
    audit_file = tmp / "audit.log"
    config = tmp / "audit.hcl"
    config.write_text(audit_config(devices, audit_file))
    port = free_port()
    bao = Path(sys.executable).parent / "bao"
    log = (tmp / "bao.log").open("w")
    proc = subprocess.Popen(
        [
            str(bao),
            "server",
            "-dev",
            f"-dev-root-token-id={TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-config={config}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        client = hvac.Client(url=f"http://127.0.0.1:{port}", token=TOKEN, timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.secrets.kv.v2.create_or_update_secret(path="probe", secret={"x": "1"})
                break
            except (requests.ConnectionError, hvac.exceptions.VaultError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((tmp / "bao.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        assert audit_file.stat().st_size > 0, "the file device records requests"
        audit_file.unlink()
        audit_file.symlink_to("/dev/full")
        proc.send_signal(signal.SIGHUP)  # reopen the audit file, as after a rotation
        time.sleep(1.0)
        try:
            read = client.secrets.kv.v2.read_secret_version(path="probe", raise_on_deleted_version=True)
            return read["data"]["data"] == {"x": "1"}
        except hvac.exceptions.InternalServerError:
            return False
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def test_with_the_file_device_alone_a_full_audit_volume_stops_vault(tmp_path: Path) -> None:
    assert not answers_after_the_audit_volume_fills({"file": AUDIT_DEVICES["file"]}, tmp_path)


def test_with_the_clusters_audit_devices_a_full_audit_volume_does_not_stop_vault(tmp_path: Path) -> None:
    assert set(AUDIT_DEVICES) == {"file", "stdout"} and AUDIT_DEVICES["stdout"] == "stdout"
    assert answers_after_the_audit_volume_fills(AUDIT_DEVICES, tmp_path)
