"""Who is calling: a party's name and role read from its client certificate.

The bank's CA writes the party's name as the certificate's common name (CN) and its role as
the organisational unit (OU: `platform`, `operator`, `bank`, ...). A service checks the role it
needs per RPC; a certificate without a role is refused, never taken as any role.
"""

from __future__ import annotations

from dataclasses import dataclass

from federation.errors import YinqiError


class IdentityError(YinqiError):
    """A caller without a usable identity or with the wrong role."""


@dataclass(frozen=True)
class Identity:
    name: str
    roles: frozenset[str]

    def require(self, allowed: set[str], action: str) -> None:
        if not self.roles & allowed:
            held = ", ".join(sorted(self.roles)) or "none"
            raise IdentityError(
                f"{self.name} (role {held}) may not {action}; needs role {' or '.join(sorted(allowed))}"
            )


def identity_from_pem(pem: bytes) -> Identity:
    """The CN and OU roles of a PEM certificate (IdentityError when it has no CN)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise IdentityError(f"the caller's certificate cannot be read ({exc})") from None
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names or not names[0].strip():
        raise IdentityError("the caller's certificate has no common name (CN); it names no party")
    roles = {
        str(a.value).strip().lower() for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    }
    return Identity(names[0].strip(), frozenset(r for r in roles if r))
