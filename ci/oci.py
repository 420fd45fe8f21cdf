"""A small OCI distribution (registry v2) client: manifests by digest (checked), blobs, artifacts by tag.

Enough for the supply-chain records that live beside an image in its registry, in cosign's layout (tags
`sha256-<hex>.sig` and `sha256-<hex>.att`), which works on any registry, the loopback `docker-registry`
(distribution 2.8, no referrers API) included. Everything fetched by digest is hashed before it is used:
a registry that serves other bytes for a digest is caught here, not trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


class RegistryError(RuntimeError):
    pass


class DigestMismatch(RegistryError):
    pass


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_repository(repository: str) -> tuple[str, str]:
    """'host:port/spira/model' -> ('host:port', 'spira/model')."""
    host, _, name = repository.partition("/")
    if not name or ("." not in host and ":" not in host and host != "localhost"):
        raise ValueError(f"not a registry repository (host/name): {repository!r}")
    return host, name


def attachment_tag(digest: str, suffix: str) -> str:
    """cosign's tag for a digest's attachment: sha256:abc… + 'sig' -> 'sha256-abc….sig'."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}.{suffix}"


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    raw: bytes

    @property
    def doc(self) -> dict:
        return json.loads(self.raw)


class Registry:
    """One registry host; `insecure` speaks plain http (the loopback registry)."""

    def __init__(
        self,
        host: str,
        insecure: bool | None = None,
        timeout: float = 60,
        credentials: tuple[str, str] | None = None,
    ):
        self.host = host
        loopback = host.startswith(("127.", "localhost", "[::1]"))
        self.scheme = "http" if (loopback if insecure is None else insecure) else "https"
        self.timeout = timeout
        # REGISTRY_USER / REGISTRY_PASSWORD, as the publish step logs podman in (a release registry)
        env = (os.environ.get("REGISTRY_USER"), os.environ.get("REGISTRY_PASSWORD"))
        self.credentials = credentials or (env if all(env) and not loopback else None)
        self._tokens: dict[str, str] = {}

    def _basic(self) -> str:
        user, password = self.credentials or ("", "")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _token(self, challenge: str) -> str:
        """Answer a `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge (distribution spec)."""
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
        headers = {"Authorization": self._basic()} if self.credentials else {}
        req = urllib.request.Request(f"{params['realm']}?{query}", headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            body = json.loads(resp.read())
        return "Bearer " + (body.get("token") or body["access_token"])

    def _url(self, name: str, kind: str, ref: str) -> str:
        return f"{self.scheme}://{self.host}/v2/{name}/{kind}/{ref}"

    def _request(self, method: str, url: str, data: bytes | None = None, headers: dict | None = None):
        scope = url.split("/v2/", 1)[-1].rsplit("/", 2)[0]
        headers = dict(headers or {})
        if scope in self._tokens:
            headers["Authorization"] = self._tokens[scope]
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
            if challenge and scope not in self._tokens:
                if challenge.lower().startswith("bearer"):
                    self._tokens[scope] = self._token(challenge)
                elif self.credentials:
                    self._tokens[scope] = self._basic()
                if scope in self._tokens:
                    return self._request(method, url, data, headers)
            if exc.code == 404:
                return None
            body = exc.read()[:500].decode(errors="replace")
            raise RegistryError(f"{method} {url}: HTTP {exc.code} {body}") from exc
        except urllib.error.URLError as exc:
            raise RegistryError(f"{method} {url}: {exc.reason}") from exc

    def manifest(self, name: str, ref: str) -> Manifest | None:
        """The manifest for a tag or digest; by digest, its bytes must hash to that digest."""
        resp = self._request(
            "GET", self._url(name, "manifests", ref), headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if resp is None:
            return None
        with resp:
            raw = resp.read()
            media_type = resp.headers.get("Content-Type", "").split(";")[0]
        actual = sha256_digest(raw)
        if ref.startswith("sha256:") and actual != ref:
            raise DigestMismatch(
                f"{self.host}/{name}@{ref}: the registry served bytes whose digest is {actual}"
            )
        return Manifest(actual, media_type or json.loads(raw).get("mediaType", ""), raw)

    def blob(self, name: str, digest: str) -> bytes:
        resp = self._request("GET", self._url(name, "blobs", digest))
        if resp is None:
            raise RegistryError(f"{self.host}/{name}: blob {digest} not found")
        with resp:
            data = resp.read()
        if sha256_digest(data) != digest:
            raise DigestMismatch(f"{self.host}/{name}: blob {digest} has other bytes")
        return data

    def put_blob(self, name: str, data: bytes) -> str:
        digest = sha256_digest(data)
        head = self._request("HEAD", self._url(name, "blobs", digest))
        if head is not None:
            head.close()
            return digest
        resp = self._request("POST", f"{self.scheme}://{self.host}/v2/{name}/blobs/uploads/")
        if resp is None:
            raise RegistryError(f"{self.host}/{name}: blob uploads are not accepted")
        with resp:
            location = resp.headers["Location"]
        url = urllib.parse.urljoin(f"{self.scheme}://{self.host}/", location)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        done = self._request("PUT", url, data=data, headers={"Content-Type": "application/octet-stream"})
        if done is None:
            raise RegistryError(f"{self.host}/{name}: blob upload {digest} was lost")
        done.close()
        return digest

    def put_manifest(self, name: str, ref: str, doc: dict, media_type: str = OCI_MANIFEST) -> str:
        raw = json.dumps(doc, separators=(",", ":")).encode()
        resp = self._request(
            "PUT", self._url(name, "manifests", ref), data=raw, headers={"Content-Type": media_type}
        )
        if resp is None:
            raise RegistryError(f"{self.host}/{name}: manifest {ref} was refused")
        resp.close()
        return sha256_digest(raw)


@dataclass(frozen=True)
class Layer:
    media_type: str
    data: bytes
    annotations: dict[str, str]


def artifact_manifest(registry: Registry, name: str, layers: list[Layer]) -> dict:
    """Upload the layers and an empty-ish config the way cosign does; return the OCI image manifest."""
    config = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer.data) for layer in layers]},
        "config": {},
    }
    config_raw = json.dumps(config, separators=(",", ":")).encode()
    registry.put_blob(name, config_raw)
    descriptors = []
    for layer in layers:
        registry.put_blob(name, layer.data)
        descriptors.append(
            {
                "mediaType": layer.media_type,
                "size": len(layer.data),
                "digest": sha256_digest(layer.data),
                "annotations": layer.annotations,
            }
        )
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config_raw), "digest": sha256_digest(config_raw)},
        "layers": descriptors,
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
