"""The bank's certificates for a federation (`yinqi bank certs`).

A self-signed CA, a SuperLink server certificate signed by it (SANs: 127.0.0.1, localhost and
any extra host names/IPs the bank is reached by). Platforms make their own SuperNode keys
(`clients.node.keys`). Production banks bring
their own PKI: only the file paths matter to the rest of the code.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from server.deploy.errors import DeployError

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"


@dataclass(frozen=True)
class CertSet:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> CertSet:
        directory = Path(directory)
        certs = cls(directory / CA_CERT, directory / SERVER_CERT, directory / SERVER_KEY)
        missing = [p for p in (certs.ca, certs.cert, certs.key) if not p.is_file()]
        if missing:
            raise DeployError(
                f"{directory}: missing {', '.join(p.name for p in missing)} (run `yinqi bank certs --out {directory}`)"
            )
        return certs


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _san(hosts: list[str]):  # type: ignore[no-untyped-def]
    from cryptography import x509

    names = []
    for host in dict.fromkeys(["127.0.0.1", "localhost", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_certs(out: Path, hosts: list[str] | None = None, days: int = 365) -> CertSet:
    """Write ca.crt/ca.key and server.pem/server.key into `out` (EC P-384, SHA-384)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "yinqi test federation CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "yinqi superlink")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_san(list(hosts or [])), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    certs = CertSet(out / CA_CERT, out / SERVER_CERT, out / SERVER_KEY)
    certs.ca.write_bytes(ca_cert.public_bytes(pem))
    _write_private(out / CA_KEY, ca_key.private_bytes(pem, pkcs8, none))
    certs.cert.write_bytes(cert.public_bytes(pem))
    _write_private(certs.key, key.private_bytes(pem, pkcs8, none))
    return certs
