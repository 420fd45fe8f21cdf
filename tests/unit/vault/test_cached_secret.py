"""The cached secret: re-read on expiry, last good value through an outage, bounded by the grace period."""

from __future__ import annotations

import pytest

from spira_core.vault import CachedSecret, SecretUnavailable
from spira_core.vault.settings import SettingsError, VaultSettings
from tests.fakes.vault import FakeSecretReader, ManualClock


def _cache(reader: FakeSecretReader, clock: ManualClock) -> CachedSecret:
    return CachedSecret(reader, ttl_s=30, grace_s=300, clock=clock)


def test_reads_are_served_from_the_cache_within_the_ttl() -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = _cache(reader, clock)
    assert cache.get() == {"k": "v"}
    clock.advance(29)
    cache.get()
    assert reader.reads == 1


def test_a_rotated_secret_is_used_once_the_ttl_expires_without_a_restart() -> None:
    reader, clock = FakeSecretReader({"k": "old"}), ManualClock()
    cache = _cache(reader, clock)
    cache.get()
    reader.rotate(k="new")
    assert cache.get() == {"k": "old"}
    clock.advance(31)
    assert cache.get() == {"k": "new"}
    assert cache.status().version == 2


def test_an_outage_serves_the_last_good_value_and_reports_it_stale() -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = _cache(reader, clock)
    cache.get()
    reader.down = True
    clock.advance(100)
    assert cache.get() == {"k": "v"}
    status = cache.status()
    assert status.stale and status.usable
    assert "unreachable" in status.last_error


def test_past_the_grace_period_the_secret_is_unavailable() -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = _cache(reader, clock)
    cache.get()
    reader.down = True
    clock.advance(331)
    with pytest.raises(SecretUnavailable):
        cache.get()
    assert not cache.status().usable


def test_recovery_clears_the_stale_flag() -> None:
    reader, clock = FakeSecretReader({"k": "v"}), ManualClock()
    cache = _cache(reader, clock)
    cache.get()
    reader.down = True
    clock.advance(40)
    cache.get()
    reader.down = False
    clock.advance(40)
    cache.get()
    assert not cache.status().stale


def test_a_first_read_failure_is_unavailable_not_a_crash() -> None:
    reader = FakeSecretReader({"k": "v"})
    reader.down = True
    with pytest.raises(SecretUnavailable):
        _cache(reader, ManualClock()).get()


def test_the_runtime_contract_needs_exactly_three_variables() -> None:
    with pytest.raises(SettingsError, match="VAULT_ROLE, VAULT_SECRET_PATH"):
        VaultSettings.from_env({"VAULT_ADDR": "http://v"})
    s = VaultSettings.from_env(
        {"VAULT_ADDR": "http://v/", "VAULT_ROLE": "r", "VAULT_SECRET_PATH": "secret/spira/x/serving"}
    )
    assert (s.addr, s.mount, s.path, str(s.token_path)) == (
        "http://v",
        "secret",
        "spira/x/serving",
        "/var/run/secrets/vault/token",
    )


def test_a_secret_path_without_a_mount_is_refused() -> None:
    with pytest.raises(SettingsError, match="<kv-mount>/<path>"):
        VaultSettings.from_env({"VAULT_ADDR": "http://v", "VAULT_ROLE": "r", "VAULT_SECRET_PATH": "serving"})
