"""The local stack's JWT signing key: it stands in for a cluster's service-account token issuer.

OpenBao's JWT auth method trusts its public key, so workloads log in locally exactly as they do in a
cluster (a JWT with audience `vault` and a service-account subject), only the issuer differs.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "spira-local-stack"


class LocalJwtSigner:
    def __init__(self, key_dir: Path, issuer: str = ISSUER) -> None:
        self.key_dir = key_dir
        self.issuer = issuer

    @classmethod
    def of_stack(cls, home: Path) -> LocalJwtSigner:
        """The signer of the stack whose data is under `home`."""
        return cls(home / "jwt")

    @property
    def private_key_path(self) -> Path:
        return self.key_dir / "signing-key.pem"

    @property
    def public_key_path(self) -> Path:
        return self.key_dir / "signing-key.pub.pem"

    def ensure(self) -> None:
        if self.private_key_path.exists():
            return
        self.key_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(self.private_key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        self.public_key_path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def public_pem(self) -> str:
        return self.public_key_path.read_text()

    def mint(self, subject: str, audience: str = "vault", ttl_s: int = 600, **claims: object) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self.private_key_path.read_bytes(), algorithm="RS256")
