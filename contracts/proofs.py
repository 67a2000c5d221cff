"""Proof files: the JSON an auditor needs to check one record against the chain alone."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from contracts.errors import ChainError

PROOF_VERSION = 1
LEAF_ENCODING = "keccak256(keccak256(abi.encode(string kind, string ref, bytes32 data_hash)))"
REQUIRED = ("leaf", "proof", "root", "contract", "chain_id", "tx_hash", "block", "kind", "ref", "data_hash")


def make_proof(
    *,
    leaf: bytes,
    proof: list[bytes],
    root: bytes,
    contract: str,
    chain_id: int,
    tx_hash: str,
    block: int,
    block_time: int,
    kind: str,
    ref: str,
    data_hash: bytes,
    leaf_count: int,
) -> dict[str, Any]:
    return {
        "version": PROOF_VERSION,
        "kind": kind,
        "ref": ref,
        "data_hash": "0x" + data_hash.hex(),
        "leaf_encoding": LEAF_ENCODING,
        "leaf": "0x" + leaf.hex(),
        "proof": ["0x" + p.hex() for p in proof],
        "root": "0x" + root.hex(),
        "leaf_count": leaf_count,
        "contract": contract,
        "chain_id": chain_id,
        "tx_hash": tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash,
        "block": block,
        "block_time": block_time,
    }


def proof_filename(kind: str, ref: str, leaf_hex: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{kind}-{ref}")[:80]
    return f"{safe}-{leaf_hex.removeprefix('0x')[:12]}.json"


def write_proof(proof: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / proof_filename(proof["kind"], proof["ref"], proof["leaf"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(proof, indent=2) + "\n")
    tmp.replace(path)
    return path


def load_proof(source: dict[str, Any] | Path | str) -> dict[str, Any]:
    """A proof dict from a dict or a JSON file, with every required field present."""
    where = "proof"
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            source = json.loads(Path(source).read_text())
        except FileNotFoundError:
            raise ChainError(f"{where}: proof file not found") from None
        except ValueError as exc:
            raise ChainError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(source, dict):
        raise ChainError(f"{where}: expected a JSON object with fields {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED if k not in source]
    if missing:
        raise ChainError(f"{where}: missing field(s) {', '.join(missing)}")
    return source


def hex32(value: Any, field: str, where: str = "proof") -> bytes:
    """A 32-byte value from a 0x hex string, or a ChainError naming the field."""
    try:
        raw = bytes.fromhex(str(value).removeprefix("0x"))
    except ValueError:
        raise ChainError(f"{where}: field '{field}' is not hex: {value!r}") from None
    if len(raw) != 32:
        raise ChainError(f"{where}: field '{field}' must be 32 bytes, got {len(raw)}")
    return raw
