"""Who is calling a yinqi service: a party and its role, read from its client certificate.

One vocabulary for every service that checks callers: the bank's services
(`server.security`) and a platform's services (`clients.vertical.embedding_service`). The
bank's CA (`server.security.ca`, `yinqi bank certs issue NAME --role ROLE`) writes the party's
name as the certificate's common name (CN) and its role as the organisational unit (OU), with
the clientAuth key usage. A certificate without exactly one known role, or meant for a server,
names no caller: it is refused, never taken as some role.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from federation.errors import YinqiError

PLATFORM, OPERATOR, IOT_MONITOR, AUDITOR = "platform", "operator", "iot-monitor", "auditor"
ROLES = (PLATFORM, OPERATOR, IOT_MONITOR, AUDITOR)
ANY_ROLE = "*"  # the identity of a plaintext (--insecure) caller: loopback tests only


class IdentityError(YinqiError):
    """A caller without a usable identity, or with a role that may not do what it asked."""


@dataclass(frozen=True)
class Identity:
    """Who is calling: a party's name, its role and its certificate's serial (hex)."""

    name: str
    role: str
    serial: str = ""

    def may(self, roles: Iterable[str]) -> bool:
        return self.role == ANY_ROLE or self.role in set(roles)

    def require(self, roles: Iterable[str], action: str) -> None:
        """Raise `IdentityError` (one line) unless this caller's role is one of `roles`."""
        allowed = sorted(set(roles))
        if not self.may(allowed):
            raise IdentityError(f"{self.name} (role {self.role}) may not {action}; needs role {' or '.join(allowed)}")

    def __str__(self) -> str:
        return f"{self.name} ({'insecure, every role' if self.role == ANY_ROLE else self.role})"


INSECURE = Identity("insecure-caller", ANY_ROLE)


def serial_hex(serial: int) -> str:
    """A certificate serial as `openssl x509 -serial` prints it (hex, upper case)."""
    return format(serial, "X")


@lru_cache(maxsize=4096)
def identity_of(pem: bytes) -> Identity:
    """The party, role and serial a client certificate names (parsed once per certificate).

    The certificate chain is not checked here: gRPC did that in the TLS handshake.
    """
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise IdentityError(f"unreadable client certificate ({exc})") from None
    serial = serial_hex(cert.serial_number)
    names = [str(a.value).strip() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    roles = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise IdentityError(f"certificate serial {serial} is not a client certificate (no clientAuth key usage)")
    if len(names) != 1 or not names[0] or len(roles) != 1 or roles[0] not in ROLES:
        raise IdentityError(
            f"certificate serial {serial} names no yinqi party and role "
            f"(expected CN=<party>, OU=one of {', '.join(ROLES)})"
        )
    return Identity(names[0], roles[0], serial)


def peer_identity(auth_context: dict[str, list[bytes]]) -> Identity:
    """The caller of a gRPC call from its verified client certificate (IdentityError if none)."""
    pems = auth_context.get("x509_pem_cert") or []
    if not pems:
        raise IdentityError("no client certificate: this service requires mutual TLS")
    return identity_of(bytes(pems[0]))
