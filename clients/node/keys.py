"""A platform's SuperNode key pair (`yinqi client keygen`): EC P-384 in OpenSSH format, which
is what Flower's SuperNode authentication expects. The private key never leaves the platform;
the bank registers the public half."""

from __future__ import annotations

import os
from pathlib import Path


def make_node_key(path: Path) -> tuple[Path, Path]:
    """A SuperNode key pair: `path` (OpenSSH private, 0600) and `path.pub` (OpenSSH public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    pub = Path(str(path) + ".pub")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    pub.write_bytes(public + b"\n")
    return path, pub
