"""Runtime secrets from Vault, the same way in a cluster and on the local stack.

A workload receives only VAULT_ADDR, VAULT_ROLE and VAULT_SECRET_PATH. It logs in with a JWT (the
projected service-account token in a cluster; a token minted with the local stack's key locally), reads
its KV v2 secret, and caches it with a TTL so a rotated secret is picked up without a restart.
"""

from spira_core.vault.cache import CachedSecret, SecretStatus, SecretUnavailable
from spira_core.vault.client import SecretReader, SecretVersion, VaultError, VaultSecretReader
from spira_core.vault.settings import VaultSettings
from spira_core.vault.tokens import FileTokenSource, SignerTokenSource, TokenSource

__all__ = [
    "CachedSecret",
    "FileTokenSource",
    "SecretReader",
    "SecretStatus",
    "SecretUnavailable",
    "SecretVersion",
    "SignerTokenSource",
    "TokenSource",
    "VaultError",
    "VaultSecretReader",
    "VaultSettings",
]
