"""What an auditor trusts, and the read-only chain view the auditor checks against.

A proof file names a contract, but anyone can deploy an AnchorRegistry and anchor whatever
they like in it: the file's address proves nothing. The auditor trusts the bank's published
anchoring contract and anchoring account(s), given on the command line (`--registry`,
`--anchorer`), in the environment (`YINQI_AUDIT_REGISTRY`, `YINQI_AUDIT_ANCHORER`, comma
separated) or in yinqi.toml:

    [audit]
    registry = "0x…"          # the bank's AnchorRegistry
    anchorer = "0x…"          # or anchorers = ["0x…", "0x…"]
    rpc = "http://…"          # the chain endpoint to check against

The auditor's view writes nothing: no data dir, no account file, no lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import ChainError
from federation.config import DEFAULT_DATA_DIR, section, setting

NO_TRUST = (
    "no trusted anchoring contract: give --registry ADDRESS --anchorer ADDRESS (the bank's published "
    "AnchorRegistry and anchoring account) or set registry/anchorer in the [audit] table of yinqi.toml"
)


@dataclass(frozen=True)
class TrustedAnchor:
    """The anchoring contract and the accounts whose anchors an auditor accepts."""

    registry: str
    anchorers: tuple[str, ...]
    source: str  # where the trust came from, reported with the verdict


def _address(value: Any, what: str) -> str:
    from web3 import Web3

    text = str(value).strip()
    if not (text.startswith("0x") and len(text) == 42 and Web3.is_address(text)):
        raise ChainError(f"{what} {text!r}: expected an address, 0x + 40 hex digits")
    return str(Web3.to_checksum_address(text))


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in (part.strip() for part in value.split(",")) if v]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def trusted_anchor(registry: str | None = None, anchorers: list[str] | None = None) -> TrustedAnchor | None:
    """The trust given explicitly, else from the environment, else from `[audit]`; None if none.

    Both halves are needed: a registry without an anchorer (or the reverse) is refused.
    """
    if registry or anchorers:
        source, reg, anchs = "command line", registry, list(anchorers or [])
    elif os.environ.get("YINQI_AUDIT_REGISTRY") or os.environ.get("YINQI_AUDIT_ANCHORER"):
        source = "YINQI_AUDIT_REGISTRY / YINQI_AUDIT_ANCHORER"
        reg, anchs = os.environ.get("YINQI_AUDIT_REGISTRY"), _listed(os.environ.get("YINQI_AUDIT_ANCHORER"))
    else:
        table = section("audit")
        if not table.get("registry") and not table.get("anchorer") and not table.get("anchorers"):
            return None
        source = "[audit] in yinqi.toml"
        reg, anchs = table.get("registry"), _listed(table.get("anchorer")) + _listed(table.get("anchorers"))
    if not reg:
        raise ChainError(
            f"trusted anchorer given ({source}) but no registry: give the bank's AnchorRegistry address too"
        )
    if not anchs:
        raise ChainError(f"trusted registry given ({source}) but no anchorer: give the bank's anchoring account too")
    return TrustedAnchor(
        registry=_address(reg, "--registry"),
        anchorers=tuple(_address(a, "--anchorer") for a in anchs),
        source=source,
    )


def own_deployment(chain: Any) -> TrustedAnchor:
    """The bank checking its own anchors: its bound registry and its own anchoring account."""
    if chain is None or getattr(chain, "registry", None) is None or not getattr(chain, "accounts", None):
        raise ChainError(NO_TRUST)
    return TrustedAnchor(
        registry=str(chain.registry.address),
        anchorers=(str(chain.account("bank").address),),
        source="this bank's own deployment",
    )


def audit_rpc(rpc: str | None) -> str | None:
    """The endpoint to audit against: given, else `YINQI_AUDIT_RPC` / `[audit] rpc`, else the chain's."""
    from contracts.client import chain_setting

    value = rpc or os.environ.get("YINQI_AUDIT_RPC") or section("audit").get("rpc") or chain_setting("rpc")
    return str(value) if value else None


def auditor_chain(rpc: str | None) -> Any:
    """A read-only view of the chain: over `rpc`, or the embedded chain's journal if this
    machine has one. Creates no directory and no file."""
    from web3 import EthereumTesterProvider, Web3

    from contracts.client import Chain, http_web3

    endpoint = audit_rpc(rpc)
    if endpoint:
        return Chain(w3=http_web3(endpoint), endpoint=endpoint, accounts={})
    journal = Path(setting("data_dir", DEFAULT_DATA_DIR)).expanduser() / "chain" / "embedded.jsonl"
    if not journal.is_file():
        raise ChainError(
            "no chain to check against: give --rpc URL (the bank's JSON-RPC endpoint, e.g. `yinqi chain node`)"
        )
    from contracts.embedded import JournaledTester

    tester = JournaledTester(journal)
    return Chain(w3=Web3(EthereumTesterProvider(tester)), endpoint=f"embedded:{journal}", accounts={}, tester=tester)
