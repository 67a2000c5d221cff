"""Private set intersection: ECDH-PSI over Ristretto255 (`group`, `protocol`), no network here."""
