"""The bank's certificate authority (`yinqi bank certs ...`): a CA that is never overwritten, the
bank's server certificate, one client certificate per party and role, and revocation.

Layout of a CA directory (`bank certs init --out DIR`):

    ca.crt, ca.key          the CA (EC P-384); ca.key stays on the bank's machine, mode 0600
    server.pem, server.key  the bank's server certificate (SANs: 127.0.0.1, localhost, --host ...)
    crl.pem                 the certificate revocation list, signed by the CA, re-written on revoke
    issued.json             every certificate issued: serial, name, role, use, hosts, expiry, revocation
    clients/NAME.crt|.key   client certificates `bank certs issue` wrote (default place)
    servers/NAME.crt|.key   service certificates `bank certs issue --server-host` wrote (default place)

A client certificate names its party in the subject's common name and its role in the
organisational unit (`federation.identity.ROLES`), with the clientAuth key usage. A party that
serves others (a platform's embedding service, `yinqi vertical serve`) gets a *service*
certificate from the same CA: still CN=party and OU=role, but the serverAuth key usage and the
host names its callers dial as subject alternative names, so it can never pass as a caller.
One name has one role: issuing it again under another role is refused, so a name always means
one party. Production banks may bring their own PKI: the services read only these file names.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from federation.clock import utcnow
from federation.errors import YinqiError
from federation.identity import ROLES, serial_hex

__all__ = ["CertError", "CertSet", "CertificateAuthority", "Issued", "make_certs", "serial_hex"]

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
CRL_FILE, INDEX_FILE, CLIENTS_DIR, SERVERS_DIR = "crl.pem", "issued.json", "clients", "servers"
CLIENT, SERVER = "client", "server"  # what an issued certificate is for
ORGANISATION = "yinqi"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HOST_PATTERN = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class CertError(YinqiError):
    """A certificate request that cannot be done (existing CA, unknown role, missing files)."""


@dataclass(frozen=True)
class CertSet:
    """The files a TLS server needs: the CA, its certificate and key, and the revocation list."""

    ca: Path
    cert: Path
    key: Path

    @property
    def crl(self) -> Path:
        return self.ca.parent / CRL_FILE

    @classmethod
    def in_dir(cls, directory: Path) -> CertSet:
        directory = Path(directory)
        certs = cls(directory / CA_CERT, directory / SERVER_CERT, directory / SERVER_KEY)
        missing = [p for p in (certs.ca, certs.cert, certs.key) if not p.is_file()]
        if missing:
            raise CertError(
                f"{directory}: missing {', '.join(p.name for p in missing)} "
                f"(run `yinqi bank certs init --out {directory}`)"
            )
        return certs


@dataclass(frozen=True)
class Issued:
    """One certificate in the CA's index: a party's client certificate, or its service one."""

    serial: str  # hex, as `openssl x509 -serial` prints it (upper case)
    name: str
    role: str
    not_after: str
    issued_at: str
    cert: str  # where it was written
    revoked_at: str | None = None
    reason: str = ""
    usage: str = CLIENT  # client (clientAuth) or server (serverAuth, with `hosts` as SANs)
    hosts: list[str] = field(default_factory=list)

    @property
    def key(self) -> Path:
        """The private key, written beside the certificate (mode 0600)."""
        return Path(self.cert).with_suffix(".key")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600; refuse to replace an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CertError(f"{path} already exists; refusing to overwrite a private key") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_new(path: Path, data: bytes) -> None:
    try:
        with open(path, "xb") as fh:
            fh.write(data)
    except FileExistsError:
        raise CertError(f"{path} already exists; refusing to overwrite it") from None


def _write_replacing(path: Path, data: bytes) -> None:
    """Whole or absent: write beside, then rename over (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pem(obj: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(obj.public_bytes(serialization.Encoding.PEM))


def _private_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _hosts(hosts: Sequence[str], option: str) -> list[str]:
    """Host names and IP addresses for a certificate's SANs, checked, duplicates dropped."""
    checked: list[str] = []
    for host in hosts:
        text = str(host).strip()
        try:
            ipaddress.ip_address(text)
        except ValueError:
            if not HOST_PATTERN.match(text):
                raise CertError(
                    f"{option} {host!r}: expected an IP address or a DNS name such as shop-a.example"
                ) from None
        checked.append(text)
    return list(dict.fromkeys(checked))


def _san(hosts: list[str]) -> Any:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _subject(common_name: str, role: str | None = None) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION)]
    if role is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _leaf(ca_cert: Any, ca_key: Any, subject: Any, key: Any, not_after: dt.datetime, hosts: list[str] | None) -> Any:
    """A certificate the CA signs: a server's (serverAuth, SANs `hosts`) or, with `hosts=None`,
    a client's (clientAuth, no SANs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(utcnow() - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if hosts is None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    else:
        builder = builder.add_extension(_san(hosts), critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
    )
    return builder.sign(ca_key, hashes.SHA384())


def _days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
        raise CertError(f"--days {days!r}: expected a whole number of days from 1 to 3650")
    return days


class CertificateAuthority:
    """An existing CA directory (see the module docstring); `create` makes a new one."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        missing = [n for n in (CA_CERT, CA_KEY) if not (self.directory / n).is_file()]
        if missing:
            raise CertError(
                f"{self.directory}: no CA here (missing {', '.join(missing)}); "
                f"create one with `yinqi bank certs init --out {self.directory}`"
            )

    # -- creating ------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path, hosts: list[str] | None = None, days: int = 365) -> CertificateAuthority:
        """A new CA, the bank's server certificate and an empty revocation list in `directory`.

        Refuses when the directory already holds a CA: replacing it would lock out every party
        holding a certificate it issued.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        days = _days(days)
        server_hosts = _hosts(["127.0.0.1", "localhost", *(hosts or [])], "--host")
        directory = Path(directory)
        existing = [n for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY) if (directory / n).exists()]
        if existing:
            raise CertError(
                f"{directory} already holds {', '.join(existing)}; refusing to overwrite an existing CA "
                "(issue more certificates with `yinqi bank certs issue`, or choose another --out)"
            )
        directory.mkdir(parents=True, exist_ok=True)
        now = utcnow()
        ca_key = ec.generate_private_key(ec.SECP384R1())
        ca_name = _subject("yinqi bank CA")
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
        server_key = ec.generate_private_key(ec.SECP384R1())
        server_cert = _leaf(
            ca_cert, ca_key, _subject("yinqi bank"), server_key, now + dt.timedelta(days=days), server_hosts
        )
        _write_private(directory / CA_KEY, _private_pem(ca_key))  # first: a concurrent create loses here
        _write_new(directory / CA_CERT, _pem(ca_cert))
        _write_private(directory / SERVER_KEY, _private_pem(server_key))
        _write_new(directory / SERVER_CERT, _pem(server_cert))
        ca = cls(directory)
        with ca._locked():
            ca._write_index([])
            ca._write_crl([])
        return ca

    # -- files ---------------------------------------------------------------------------
    @property
    def server(self) -> CertSet:
        return CertSet.in_dir(self.directory)

    @property
    def crl_path(self) -> Path:
        return self.directory / CRL_FILE

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _load(self) -> tuple[Any, Any]:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        cert = x509.load_pem_x509_certificate((self.directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((self.directory / CA_KEY).read_bytes(), password=None)
        return cert, key

    def issued(self) -> list[Issued]:
        """Every certificate this CA issued to a party (client and service ones), oldest first."""
        path = self.directory / INDEX_FILE
        if not path.is_file():
            return []
        try:
            entries = json.loads(path.read_text())
            return [Issued(**entry) for entry in entries]
        except (ValueError, TypeError) as exc:
            raise CertError(f"{path}: not a certificate index written by yinqi ({exc})") from None

    def _write_index(self, entries: list[Issued]) -> None:
        data = json.dumps([e.to_dict() for e in entries], indent=2) + "\n"
        _write_replacing(self.directory / INDEX_FILE, data.encode())

    def _write_crl(self, entries: list[Issued]) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        ca_cert, ca_key = self._load()
        now = utcnow()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - dt.timedelta(minutes=1))
            .next_update(ca_cert.not_valid_after_utc)  # re-signed on every revocation, valid as long as the CA
        )
        for entry in entries:
            if entry.revoked_at is None:
                continue
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(entry.serial, 16))
                .revocation_date(dt.datetime.fromisoformat(entry.revoked_at))
                .build()
            )
        _write_replacing(self.crl_path, _pem(builder.sign(ca_key, hashes.SHA384())))

    # -- issuing and revoking ------------------------------------------------------------
    def issue(
        self,
        name: str,
        role: str,
        out: Path | None = None,
        days: int = 365,
        *,
        server_hosts: Sequence[str] | None = None,
    ) -> Issued:
        """A certificate and key for party `name` in `role` (files NAME.crt, NAME.key).

        Without `server_hosts`: a client certificate (clientAuth), by default in CERTS/clients.
        With `server_hosts` (at least one host name or IP its callers dial): a service
        certificate for a party that serves others, e.g. a platform's embedding service
        (serverAuth, those hosts as SANs, still CN=name and OU=role), by default in CERTS/servers.
        """
        from cryptography.hazmat.primitives.asymmetric import ec

        days = _days(days)
        if not NAME_PATTERN.match(name or ""):
            raise CertError(
                f"party name {name!r}: expected 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        if role not in ROLES:
            raise CertError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        hosts = None if server_hosts is None else _hosts(server_hosts, "--server-host")
        if hosts is not None and not hosts:
            raise CertError("a service certificate needs at least one --server-host (the name its callers dial)")
        default_dir = CLIENTS_DIR if hosts is None else SERVERS_DIR
        out = Path(out) if out is not None else self.directory / default_dir
        with self._locked():
            entries = self.issued()
            other = next((e for e in entries if e.name == name and e.role != role), None)
            if other is not None:
                raise CertError(
                    f"party '{name}' already has a {other.role} certificate (serial {other.serial}); "
                    "one name is one party with one role: choose another name"
                )
            cert_path, key_path = out / f"{name}.crt", out / f"{name}.key"
            taken = [p for p in (cert_path, key_path) if p.exists()]
            if taken:
                raise CertError(f"{taken[0]} already exists; refusing to overwrite it (choose another --out)")
            ca_cert, ca_key = self._load()
            now = utcnow()
            key = ec.generate_private_key(ec.SECP384R1())
            not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
            cert = _leaf(ca_cert, ca_key, _subject(name, role), key, not_after, hosts)
            out.mkdir(parents=True, exist_ok=True)
            _write_private(key_path, _private_pem(key))
            _write_new(cert_path, _pem(cert))
            entry = Issued(
                serial=serial_hex(cert.serial_number),
                name=name,
                role=role,
                not_after=cert.not_valid_after_utc.isoformat(),
                issued_at=now.isoformat(timespec="seconds"),
                cert=str(cert_path),
                usage=CLIENT if hosts is None else SERVER,
                hosts=hosts or [],
            )
            self._write_index([*entries, entry])
        return entry

    def revoke(self, who: str, reason: str = "") -> list[Issued]:
        """Revoke every live certificate of party `who` (a name) or the one with serial `who`."""
        with self._locked():
            entries = self.issued()
            wanted = who.upper().removeprefix("0X")
            hits = [e for e in entries if e.revoked_at is None and (e.name == who or e.serial == wanted)]
            if not hits:
                known = sorted({e.name for e in entries})
                raise CertError(
                    f"no live certificate of party or serial '{who}' (parties: {', '.join(known) or 'none'})"
                )
            now = utcnow().isoformat(timespec="seconds")
            serials = {e.serial for e in hits}
            entries = [
                Issued(**{**e.to_dict(), "revoked_at": now, "reason": reason[:200]}) if e.serial in serials else e
                for e in entries
            ]
            self._write_crl(entries)
            self._write_index(entries)
        return [e for e in entries if e.serial in serials]


def make_certs(out: Path, hosts: list[str] | None = None, days: int = 365) -> CertSet:
    """A new CA with the bank's server certificate in `out` (refuses to replace an existing CA)."""
    return CertificateAuthority.create(out, hosts, days).server
