"""The cache never waits on Vault under its lock: one read in flight, callers served from the cache,
failures backed off exponentially, and the CA found beside the login credential."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from spira_core.vault import CachedSecret, SecretUnavailable, VaultError, VaultSecretReader
from spira_core.vault.settings import VaultSettings, vault_ca_path
from tests.fakes.vault import FakeSecretReader, ManualClock

CONTRACT = {"VAULT_ROLE": "r", "VAULT_SECRET_PATH": "secret/spira/x/serving"}


def _expired_cache(reader: FakeSecretReader, clock: ManualClock) -> CachedSecret:
    cache = CachedSecret(reader, ttl_s=30, grace_s=300, clock=clock)
    cache.get()
    clock.advance(31)
    return cache


def _in_thread(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_status_and_a_usable_value_are_answered_while_a_read_hangs() -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = _expired_cache(reader, clock)
    reader.hang()
    refresher = _in_thread(cache.get)
    assert reader.in_read.wait(5)
    start = time.monotonic()
    assert cache.status().usable
    assert cache.get() == {"k": "v"}
    assert time.monotonic() - start < 0.5  # the hanging read holds no lock
    reader.release()
    refresher.join(5)


def test_only_one_read_is_in_flight_however_many_callers() -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = _expired_cache(reader, clock)
    reader.hang()
    callers = [_in_thread(cache.get) for _ in range(5)]
    assert reader.in_read.wait(5)
    for caller in callers[1:]:
        caller.join(5)
    assert reader.reads == 2  # the first read, then one refresh for five callers
    reader.release()
    callers[0].join(5)
    assert cache.status().refreshes == 2


def test_callers_without_a_value_wait_for_the_read_in_flight_instead_of_starting_their_own() -> None:
    reader = FakeSecretReader({"k": "v"})
    cache = CachedSecret(reader, ttl_s=30, grace_s=300)
    reader.hang()
    got: list[dict] = []
    first = _in_thread(lambda: got.append(cache.get()))
    assert reader.in_read.wait(5)
    second = _in_thread(lambda: got.append(cache.get()))
    second.join(0.3)
    assert second.is_alive()  # waiting, not reading
    reader.release()
    first.join(5)
    second.join(5)
    assert got == [{"k": "v"}, {"k": "v"}] and reader.reads == 1


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = CachedSecret(reader, ttl_s=30, grace_s=300, clock=clock, backoff_s=1, backoff_cap_s=4)
    reader.down = True
    delays = []
    for _ in range(5):
        with pytest.raises(SecretUnavailable):
            cache.get()
        reads = reader.reads
        waited = 0.0
        while reader.reads == reads:
            clock.advance(0.25)
            waited += 0.25
            with pytest.raises(SecretUnavailable, match="unreachable"):
                cache.get()  # inside the backoff: the last error at once, no read
        delays.append(waited)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_success_resets_the_backoff() -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = CachedSecret(reader, ttl_s=1, grace_s=300, clock=clock, backoff_s=1, backoff_cap_s=60)
    cache.get()
    reader.down = True
    for _ in range(4):
        clock.advance(20)
        cache.get()
    reader.down = False
    clock.advance(20)
    cache.get()
    reader.down = True
    clock.advance(1.5)
    cache.get()
    reads = reader.reads
    clock.advance(1.1)
    cache.get()
    assert reader.reads == reads + 1  # one second after the first failure again, not 16


def test_a_repeated_failure_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = CachedSecret(reader, ttl_s=30, grace_s=300, clock=clock)
    reader.down = True
    with caplog.at_level(logging.WARNING, logger="spira_core.vault.cache"):
        for _ in range(4):
            with pytest.raises(SecretUnavailable):
                cache.get()
            clock.advance(60)
    assert [r.getMessage() for r in caplog.records] == [
        "Vault secret read failed: Vault at http://fake is unreachable: ConnectionError"
    ]


def test_the_ca_is_the_file_ca_crt_beside_the_token_or_the_local_signing_key() -> None:
    cluster = VaultSettings.from_env({"VAULT_ADDR": "https://vault:8200", **CONTRACT})
    assert cluster.ca_path == Path("/var/run/secrets/vault/ca.crt") == vault_ca_path(cluster.token_path)
    local = VaultSettings.from_env(
        {
            "VAULT_ADDR": "https://127.0.0.1:18200",
            **CONTRACT,
            "VAULT_JWT_SIGNER_KEY": "/home/u/.spira/jwt/signing-key.pem",
            "VAULT_JWT_SUBJECT": "system:serviceaccount:spira:spira-serving",
        }
    )
    assert local.ca_path == Path("/home/u/.spira/jwt/ca.crt")


def test_https_without_the_ca_file_fails_naming_the_ca_path(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a.b.c")
    settings = VaultSettings.from_env(
        {"VAULT_ADDR": "https://127.0.0.1:9", **CONTRACT, "VAULT_JWT_PATH": str(token)}
    )
    with pytest.raises(VaultError, match=f"the Vault CA {tmp_path / 'ca.crt'} does not exist"):
        VaultSecretReader(settings, settings.token_source()).read()
