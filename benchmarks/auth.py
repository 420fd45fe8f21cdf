"""What checking a client's token costs serving, per request, on one core (spira_core/client_auth.py).

    python -m benchmarks.auth [--n 5000]

A 2048-bit RSA key stands in for Vault's identity key (the same algorithm, RS256); the keys are already
fetched (the background thread's work, off the request path). Reports the microseconds per request of
`TokenVerifier.verify` for a valid token and of the middleware's 401 for a missing and a forged one (the
work done before a refused upload's body could be read), in CPU time of the calling thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from spira_core import client_auth as auth

ISSUER = "https://vault.bench:8200/v1/identity/oidc"


def _setup() -> tuple[auth.TokenVerifier, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k", "use": "sig"}
    keys = auth.KeySet(lambda: {"issuer": ISSUER, "keys": [public]})
    keys.refresh()
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": auth.AUDIENCE,
        "sub": "e",
        "iat": now,
        "exp": now + 900,
        auth.CLIENT_CLAIM: "gate",
    }
    valid = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k"})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k"})
    return auth.TokenVerifier(keys), valid, forged


def per_call_us(fn, n: int) -> float:
    """CPU microseconds per call (this thread's CPU time: the figure holds up on a shared machine)."""
    fn()
    t0 = time.thread_time()
    for _ in range(n):
        fn()
    return 1e6 * (time.thread_time() - t0) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.auth")
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args(argv).n
    verifier, valid, forged = _setup()

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    app = auth.BearerAuth(inner, lambda: verifier)

    async def sink(_message):
        return None

    async def receive():
        raise AssertionError("a refused request's body is never read")

    def through(header: bytes | None) -> None:
        headers = [(b"authorization", header)] if header else []
        asyncio.run(app({"type": "http", "path": "/predict", "headers": headers}, receive, sink))

    def refused(token: str) -> None:
        try:
            verifier.verify(f"Bearer {token}")
        except auth.Unauthenticated:
            return
        raise AssertionError("accepted")

    rows = [
        ("verify a valid token", per_call_us(lambda: verifier.verify(f"Bearer {valid}"), n)),
        ("refuse a forged token (signature)", per_call_us(lambda: refused(forged), n)),
        (
            "middleware, valid token, incl. asyncio.run",
            per_call_us(lambda: through(f"Bearer {valid}".encode()), n // 5),
        ),
        ("middleware, no token → 401, incl. asyncio.run", per_call_us(lambda: through(None), n // 5)),
        (
            "asyncio.run of an empty coroutine (baseline)",
            per_call_us(lambda: asyncio.run(sink(None)), n // 5),
        ),
    ]
    print("| step | CPU µs per request |\n|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.0f} |")


if __name__ == "__main__":
    main()
