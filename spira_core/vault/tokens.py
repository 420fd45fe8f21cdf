"""Where the login JWT comes from: a projected token file (clusters) or the local stack's signer."""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path


class TokenSource(ABC):
    @abstractmethod
    def token(self) -> str:
        """A JWT to log in with; read fresh on every login because the kubelet rotates the file."""


class FileTokenSource(TokenSource):
    def __init__(self, path: Path) -> None:
        self.path = path

    def token(self) -> str:
        try:
            value = self.path.read_text().strip()
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"the service-account token file {self.path} does not exist") from exc
        if not value:
            raise ValueError(f"the service-account token file {self.path} is empty")
        return value


class SignerTokenSource(TokenSource):
    """Local stack only: mint a short-lived token shaped like a projected service-account token."""

    def __init__(
        self,
        key_path: Path,
        subject: str,
        issuer: str = "spira-local-stack",
        audience: str = "vault",
        ttl_s: int = 300,
    ) -> None:
        self.key_path = key_path
        self.subject = subject
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def token(self) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": self.audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.key_path.read_bytes(), algorithm="RS256")
