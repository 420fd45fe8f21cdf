"""The stand-in for the pod's projected volume: the token and Vault's CA, where the runtime client looks."""

from __future__ import annotations

import stat
from pathlib import Path

from ci.ephemeral import TOKEN_DIR, write_token
from spira_core.vault.settings import DEFAULT_TOKEN_PATH, vault_ca_path


def test_the_token_directory_holds_the_ca_as_ca_crt_beside_the_token(tmp_path: Path) -> None:
    ca = tmp_path / "stack-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n...\n")
    token = write_token(tmp_path / "vault", "a.b.c", ca=ca)
    assert token.read_text() == "a.b.c"
    assert vault_ca_path(token).read_text() == ca.read_text()
    for f in (token, vault_ca_path(token)):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644  # readable by the container's uid 10001
    # the directory is mounted where the cluster projects the token, so the CA lands where pods look
    assert str(vault_ca_path(Path(TOKEN_DIR) / token.name)) == str(vault_ca_path(Path(DEFAULT_TOKEN_PATH)))


def test_without_a_ca_only_the_token_is_written(tmp_path: Path) -> None:
    token = write_token(tmp_path / "vault", "a.b.c", ca=None)
    assert sorted(p.name for p in token.parent.iterdir()) == ["token"]
