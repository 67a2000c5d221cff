"""A caller's identity from its client certificate, and the revocation list checked on each call.

gRPC has already verified the certificate chain during the TLS handshake (the bank's CA only);
here the bank reads who the certificate names (common name = party, organisational unit = role)
and checks that its serial is not in the CA's revocation list. The list is re-read when its file
changes, so `yinqi bank certs revoke` takes effect on the next call without a restart.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from federation.identity import Identity, IdentityError, serial_hex
from federation.identity import identity_of as _identity_of


class AuthError(IdentityError):
    """A caller the bank cannot accept (no usable identity, revoked certificate).

    `identity` is who the certificate names when it could be read (a revoked one), else None.
    """

    def __init__(self, message: str, identity: Identity | None = None) -> None:
        super().__init__(message)
        self.identity = identity


def identity_of(pem: bytes) -> Identity:
    """The party, role and serial a client certificate names (`federation.identity.identity_of`)."""
    try:
        return _identity_of(pem)
    except IdentityError as exc:
        raise AuthError(str(exc)) from None


class RevocationList:
    """The CA's CRL file, verified against the CA and re-read whenever the file changes.

    Fails closed: a missing, unreadable or wrongly signed list refuses every caller, since the
    bank can no longer tell which certificates were revoked.
    """

    def __init__(self, crl: Path, ca: Path) -> None:
        self.path = Path(crl)
        self.ca = Path(ca)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._revoked: dict[str, str] = {}
        self._error: str | None = None

    def _reload(self) -> None:
        from cryptography import x509

        try:
            crl = x509.load_pem_x509_crl(self.path.read_bytes())
            ca = x509.load_pem_x509_certificate(self.ca.read_bytes())
        except (OSError, ValueError) as exc:
            self._error = f"cannot read the revocation list {self.path} ({exc})"
            return
        if not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
            self._error = f"the revocation list {self.path} is not signed by the bank's CA"
            return
        self._revoked = {serial_hex(r.serial_number): r.revocation_date_utc.isoformat(timespec="seconds") for r in crl}
        self._error = None

    def revoked_at(self, serial: str) -> str | None:
        """When `serial` was revoked, or None; raises AuthError when the list cannot be read."""
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            if stamp is None:
                raise AuthError(f"the revocation list {self.path} is missing; refusing every caller until it is back")
            if stamp != self._stamp:
                self._reload()
                self._stamp = stamp
            if self._error:
                raise AuthError(self._error + "; refusing every caller")
            return self._revoked.get(serial)


def caller_identity(auth_context: dict[str, Any], revocations: RevocationList | None) -> Identity:
    """The verified caller of a gRPC call from its auth context; AuthError if it has none."""
    pems = auth_context.get("x509_pem_cert") or []
    if not pems:
        raise AuthError("no client certificate: the bank's services require mutual TLS")
    identity = identity_of(bytes(pems[0]))
    if revocations is not None:
        revoked = revocations.revoked_at(identity.serial)
        if revoked is not None:
            raise AuthError(
                f"certificate serial {identity.serial} of {identity.name} ({identity.role}) was revoked at {revoked}",
                identity,
            )
    return identity
