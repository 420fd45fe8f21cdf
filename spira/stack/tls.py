"""The local stack's private CA and OpenBao's server certificate, as the clusters have (infra's Vault CA).

The CA certificate is written where workloads look for it: `ca.crt` beside the login credential
(`spira_core.vault.settings.vault_ca_path`; locally the JWT signing key, in a cluster the projected token).
The CA's key and the server's certificate and key stay under $SPIRA_HOME/tls (keys 0600). The server
certificate names 127.0.0.1 and localhost and is renewed on `spira stack up` when it is no longer signed by
the CA or expires within 30 days.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)
SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode under O_CREAT


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRA local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


class LocalCa:
    def __init__(self, home: Path, ca_cert: Path) -> None:
        self.dir = home / "tls"
        self.ca_cert = ca_cert
        self.ca_key = self.dir / "ca.key"
        self.server_cert = self.dir / "openbao.crt"
        self.server_key = self.dir / "openbao.key"

    def ensure(self) -> None:
        """Create the CA once, and a server certificate whenever the current one would not verify soon."""
        if not (self.ca_cert.is_file() and self.ca_key.is_file()):
            self._new_ca()
        if not self._server_valid():
            self._new_server()

    def _new_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name("SPIRA local stack CA")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.ca_key, _key_pem(key))
        self.ca_cert.parent.mkdir(parents=True, exist_ok=True)
        self.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.ca_cert.chmod(0o644)  # public; containers running as another uid read it

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        return cert, key  # type: ignore[return-value]

    def _server_valid(self) -> bool:
        if not (self.server_cert.is_file() and self.server_key.is_file()):
            return False
        try:
            ca, _ = self._load_ca()
            cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE

    def _new_server(self) -> None:
        self.issue("openbao.spira.local", self.server_cert, self.server_key)

    def issue(
        self,
        common_name: str,
        cert_path: Path,
        key_path: Path,
        names: tuple[str, ...] = SERVER_NAMES,
        ips: tuple[str, ...] = SERVER_IPS,
        days: int = SERVER_DAYS,
    ) -> None:
        """A server certificate signed by this CA for `names` and `ips` (key 0600), as cert-manager's CA
        Issuer gives a cluster's Services from the same kind of private CA (tls.crt/tls.key)."""
        ca, ca_key = self._load_ca()
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(key_path, _key_pem(key))
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
