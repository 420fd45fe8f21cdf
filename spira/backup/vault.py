"""OpenBao's storage as a raft snapshot (`GET /v1/sys/storage/raft/snapshot`), restored with
`POST /v1/sys/storage/raft/snapshot-force`.

A snapshot is encrypted by the keyring of the cluster that took it: restored into a Vault that was
initialised again (new keys), it leaves that Vault sealed, and only the backed-up unseal key opens it;
the backed-up root token is then the valid one. So the backup holds the stack's keys file
(`vault/init.json`, 0600) beside the snapshot, and the restore puts it back where the stack reads it.
After unsealing, the stack's bootstrap is applied again (what `spira stack up` applies on every start):
it re-registers this home's JWT signing key, so workloads log in even if the home's key changed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from infra.vault import layout
from spira.backup.manifest import BackupFailed, BackupRefused, write_private
from spira.backup.ports import PartResult, Say, VaultSnapshots
from spira.stack.signer import LocalJwtSigner
from spira.stack.vault import OpenBaoService

SNAPSHOT = "raft.snap"
KEYS = "keys.json"


class OpenBaoSnapshots(VaultSnapshots):
    def __init__(
        self, service: OpenBaoService, signer: LocalJwtSigner, env: str, timeout_s: float = 120
    ) -> None:
        self.service = service
        self.signer = signer
        self.env = env
        self.timeout_s = timeout_s

    # -- helpers ------------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.service.addr}/v1/{path}"

    def _client(self, token: str) -> hvac.Client:
        return hvac.Client(url=self.service.addr, token=token, verify=str(self.service.ca_cert), timeout=30)

    def kv_versions(self, token: str) -> dict[str, int]:
        """Every KV v2 secret under the mount and its current version (no values)."""
        client = self._client(token)
        found: dict[str, int] = {}

        def walk(prefix: str) -> None:
            try:
                keys = client.secrets.kv.v2.list_secrets(path=prefix, mount_point=layout.KV_MOUNT)["data"][
                    "keys"
                ]
            except hvac.exceptions.InvalidPath:
                return
            for key in keys:
                if key.endswith("/"):
                    walk(prefix + key)
                else:
                    meta = client.secrets.kv.v2.read_secret_metadata(
                        path=prefix + key, mount_point=layout.KV_MOUNT
                    )
                    found[prefix + key] = int(meta["data"]["current_version"])

        walk("")
        return dict(sorted(found.items()))

    # -- take ---------------------------------------------------------------------------------------
    def take(self, dest: Path, say: Say) -> PartResult:
        token = self.service.keys()["root_token"]
        say("vault: raft snapshot")
        resp = requests.get(
            self._url("sys/storage/raft/snapshot"),
            headers={"X-Vault-Token": token},
            verify=str(self.service.ca_cert),
            stream=True,
            timeout=self.timeout_s,
        )
        if resp.status_code != 200:
            raise BackupFailed(f"vault: the raft snapshot answered {resp.status_code}: {resp.text[:200]}")
        path = dest / SNAPSHOT
        write_private(path, b"")
        with open(path, "wb") as fh:
            for block in resp.iter_content(1 << 20):
                fh.write(block)
        write_private(dest / KEYS, self.service.init_file.read_bytes())
        versions = self.kv_versions(token)
        size = path.stat().st_size
        return PartResult(
            f"raft snapshot, {len(versions)} KV secrets, unseal keys",
            {"snapshot_bytes": size, "kv_versions": versions},
        )

    # -- check --------------------------------------------------------------------------------------
    def check(self, src: Path, taken: dict[str, Any]) -> None:
        try:
            keys = json.loads((src / KEYS).read_text())
            if not keys["root_token"] or not keys["unseal_keys_b64"]:
                raise KeyError("root_token")
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BackupRefused(f"{src / KEYS} holds no usable unseal keys ({exc})") from exc
        if not (src / SNAPSHOT).is_file():
            raise BackupRefused(f"{src / SNAPSHOT} is missing")
        if not isinstance(taken.get("kv_versions"), dict):
            raise BackupRefused("the manifest lists no Vault inventory (kv_versions)")

    # -- restore ------------------------------------------------------------------------------------
    def restore(self, src: Path, taken: dict[str, Any], say: Say) -> PartResult:
        keys_bytes = (src / KEYS).read_bytes()
        keys = json.loads(keys_bytes)
        current_token = self.service.keys()["root_token"]
        previous = self.service.init_file.read_bytes()
        say("vault: restoring the raft snapshot (snapshot-force)")
        # The keys file first: whatever happens next, it names the keys of the data Vault will hold.
        write_private(self.service.init_file, keys_bytes)
        try:
            with open(src / SNAPSHOT, "rb") as fh:
                resp = requests.post(
                    self._url("sys/storage/raft/snapshot-force"),
                    headers={"X-Vault-Token": current_token},
                    data=fh,
                    verify=str(self.service.ca_cert),
                    timeout=self.timeout_s,
                )
        except requests.RequestException:
            write_private(self.service.init_file, previous)
            raise
        if resp.status_code not in (200, 204):
            write_private(self.service.init_file, previous)
            raise BackupFailed(f"vault: snapshot-force answered {resp.status_code}: {resp.text[:200]}")
        self._unseal(keys)
        say("vault: unsealed with the backup's keys; applying this stack's auth and policies")
        self.service.bootstrap(self.signer, self.env)
        now = self.kv_versions(keys["root_token"])
        wrong = {p: now.get(p) for p, v in taken["kv_versions"].items() if now.get(p) != v}
        if wrong:
            path, version = next(iter(wrong.items()))
            raise BackupFailed(
                f"vault: after the restore {path} is at version {version}, "
                f"the backup took {taken['kv_versions'][path]} ({len(wrong)} secrets differ)"
            )
        return PartResult(f"{len(now)} KV secrets at their backed-up versions", {"kv_secrets": len(now)})

    def _unseal(self, keys: dict[str, Any]) -> None:
        """Unseal with the backup's keys once the restored keyring is loaded; done after 3 good answers in
        a row (right after the restore, Vault answers from its old state for a moment, then seals)."""
        ca = str(self.service.ca_cert)
        deadline = time.monotonic() + self.timeout_s
        good = 0
        time.sleep(1.0)
        while time.monotonic() < deadline:
            try:
                status = requests.get(self._url("sys/seal-status"), verify=ca, timeout=10).json()
                if status.get("sealed"):
                    good = 0
                    for key in keys["unseal_keys_b64"]:
                        requests.post(self._url("sys/unseal"), json={"key": key}, verify=ca, timeout=30)
                else:
                    ok = (
                        requests.get(
                            self._url("auth/token/lookup-self"),
                            headers={"X-Vault-Token": keys["root_token"]},
                            verify=ca,
                            timeout=10,
                        ).status_code
                        == 200
                        and self.service.healthy()
                    )
                    good = good + 1 if ok else 0
                    if good >= 3:
                        return
            except (requests.RequestException, ValueError):
                good = 0
            time.sleep(0.5)
        raise BackupFailed(
            f"vault: not unsealed with the backup's keys within {self.timeout_s:.0f}s "
            f"(see {self.service.cfg.home / 'run' / 'openbao.log'})"
        )
