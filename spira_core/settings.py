"""Wiring of a workload's runtime secret: environment → Vault settings → cached reader."""

from __future__ import annotations

from collections.abc import Mapping

from spira_core.vault import CachedSecret, SecretVersion, VaultSecretReader, VaultSettings


def cached_service_secret(environ: Mapping[str, str] | None = None) -> CachedSecret:
    """The long-lived, TTL-cached secret a server holds (re-read on expiry, grace on outage)."""
    settings = VaultSettings.from_env(environ)
    reader = VaultSecretReader(settings, settings.token_source())
    return CachedSecret(reader, ttl_s=settings.cache_ttl_s, grace_s=settings.grace_s)


def service_secret_version(service: str, environ: Mapping[str, str] | None = None) -> SecretVersion:
    """One read of a batch job's secret with its KV version (training stages run minutes, not days: no
    cache needed; the version goes into the run's lease, spira_core.run_lease)."""
    settings = VaultSettings.from_env(environ)
    if not settings.path.rstrip("/").endswith(f"/{service}"):
        raise ValueError(f"VAULT_SECRET_PATH {settings.mount}/{settings.path} is not a {service!r} secret")
    return VaultSecretReader(settings, settings.token_source()).read()


def service_secret(service: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """One read of a batch job's secret."""
    return service_secret_version(service, environ).data
