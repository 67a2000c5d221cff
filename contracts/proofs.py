"""Proof files: the JSON an auditor needs to check one record against the chain.

A proof file comes from another party, so it is read as hostile input: bounded in size,
strict UTF-8 JSON, every field checked for type and shape, and at most `MAX_SIBLINGS`
siblings. Any problem is one `ChainError` line naming the file and the field. Proofs are
written to a temporary file and renamed, so a reader never sees half a proof.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import ChainError

PROOF_VERSION = 1
LEAF_ENCODING = "keccak256(keccak256(abi.encode(string kind, string ref, bytes32 data_hash)))"
REQUIRED = ("leaf", "proof", "root", "contract", "chain_id", "tx_hash", "block", "kind", "ref", "data_hash")
# The registry stores a batch's leaf count as uint32, so an anchored tree has < 2**32 leaves and
# no leaf sits deeper than 32 levels: a longer proof cannot be one of ours. (The outbox's batches
# of ≤ 10,000 leaves give at most 14.) The bound keeps a hostile file from making the verifier
# hash or send megabytes.
MAX_SIBLINGS = 32
# 32 siblings at 68 characters each plus the other fields is ~3 KB; 64 KiB leaves room for
# indentation and long refs, and refuses a 200k-sibling file before parsing it.
MAX_PROOF_BYTES = 64 * 1024
MAX_KIND_BYTES = 31  # stored on chain as a bytes32 label
MAX_REF_CHARS = 256

_HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class Proof:
    """A parsed proof file: every field of the right type and shape (not yet checked on chain)."""

    kind: str
    ref: str
    data_hash: bytes
    leaf: bytes
    siblings: tuple[bytes, ...]
    root: bytes
    contract: str  # the address the file names (never trusted on its own)
    chain_id: int
    tx_hash: bytes
    block: int
    leaf_count: int | None
    where: str


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


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync, then rename: whole or absent."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_proof(proof: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / proof_filename(proof["kind"], proof["ref"], proof["leaf"])
    write_atomically(path, json.dumps(proof, indent=2) + "\n")
    return path


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "…"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _read(path: Path) -> Any:
    where = str(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ChainError(f"{where}: is a directory, expected a proof file")
        if size > MAX_PROOF_BYTES:
            raise ChainError(
                f"{where}: {size:,} bytes; a proof file is at most {MAX_PROOF_BYTES:,} bytes "
                f"(≤ {MAX_SIBLINGS} siblings), so this is not one"
            )
        with path.open("rb") as fh:
            raw = fh.read(MAX_PROOF_BYTES + 1)
    except FileNotFoundError:
        raise ChainError(f"{where}: proof file not found") from None
    except OSError as exc:
        raise ChainError(f"{where}: cannot read the proof file ({exc.strerror})") from None
    if len(raw) > MAX_PROOF_BYTES:
        raise ChainError(f"{where}: more than {MAX_PROOF_BYTES:,} bytes; not a proof file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChainError(f"{where}: not UTF-8 text (byte {exc.start}); a proof file is UTF-8 JSON") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise ChainError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise ChainError(f"{where}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def _hex32(doc: dict[str, Any], field: str, where: str) -> bytes:
    value = doc[field]
    if not isinstance(value, str) or not _HEX32.match(value):
        raise ChainError(f"{where}: field '{field}' must be 32 bytes as 0x + 64 hex digits, got {_shown(value)}")
    return bytes.fromhex(value.removeprefix("0x"))


def _int(doc: dict[str, Any], field: str, where: str, low: int, high: int) -> int:
    value = doc[field]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ChainError(f"{where}: field '{field}' must be an integer in {low}..{high}, got {_shown(value)}")
    return value


def _text(
    doc: dict[str, Any], field: str, where: str, *, max_bytes: int | None = None, max_chars: int | None = None
) -> str:
    value = doc[field]
    ok = isinstance(value, str) and value != ""
    if ok:
        try:
            encoded = value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from \ud800 escapes
            ok = False
        else:
            ok = (max_bytes is None or len(encoded) <= max_bytes) and (max_chars is None or len(value) <= max_chars)
    if not ok:
        limit = f"1..{max_bytes} bytes" if max_bytes is not None else f"1..{max_chars} characters"
        raise ChainError(f"{where}: field '{field}' must be text of {limit}, got {_shown(value)}")
    return str(value)


def parse_proof(source: dict[str, Any] | Path | str) -> Proof:
    """A checked `Proof` from a dict or a proof file, or a ChainError naming what is wrong."""
    where = "proof"
    doc: Any = source
    if isinstance(source, (str, Path)):
        where = str(source)
        doc = _read(Path(source))
    if not isinstance(doc, dict):
        raise ChainError(f"{where}: expected a JSON object with fields {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise ChainError(f"{where}: missing field(s) {', '.join(missing)}")
    if "version" in doc and doc["version"] != PROOF_VERSION:
        raise ChainError(f"{where}: proof version {_shown(doc['version'])} is not supported (expected {PROOF_VERSION})")
    siblings = doc["proof"]
    if not isinstance(siblings, list):
        raise ChainError(f"{where}: field 'proof' must be a list of 32-byte hex siblings, got {_shown(siblings)}")
    if len(siblings) > MAX_SIBLINGS:
        raise ChainError(
            f"{where}: {len(siblings):,} siblings; an anchored tree (< 2**32 leaves) has at most {MAX_SIBLINGS}"
        )
    parsed = []
    for i, sibling in enumerate(siblings):
        if not isinstance(sibling, str) or not _HEX32.match(sibling):
            raise ChainError(
                f"{where}: field 'proof[{i}]' must be 32 bytes as 0x + 64 hex digits, got {_shown(sibling)}"
            )
        parsed.append(bytes.fromhex(sibling.removeprefix("0x")))
    contract = doc["contract"]
    if not isinstance(contract, str) or not _ADDRESS.match(contract):
        raise ChainError(f"{where}: field 'contract' must be an address (0x + 40 hex digits), got {_shown(contract)}")
    leaf_count = None
    if doc.get("leaf_count") is not None:
        leaf_count = _int(doc, "leaf_count", where, 1, 2**32 - 1)
    return Proof(
        kind=_text(doc, "kind", where, max_bytes=MAX_KIND_BYTES),
        ref=_text(doc, "ref", where, max_chars=MAX_REF_CHARS),
        data_hash=_hex32(doc, "data_hash", where),
        leaf=_hex32(doc, "leaf", where),
        siblings=tuple(parsed),
        root=_hex32(doc, "root", where),
        contract=contract,
        chain_id=_int(doc, "chain_id", where, 1, 2**64 - 1),
        tx_hash=_hex32(doc, "tx_hash", where),
        block=_int(doc, "block", where, 0, 2**63 - 1),
        leaf_count=leaf_count,
        where=where,
    )


def load_proof(source: dict[str, Any] | Path | str) -> dict[str, Any]:
    """The proof as a dict (checked by `parse_proof` first)."""
    parse_proof(source)
    if isinstance(source, (str, Path)):
        loaded: dict[str, Any] = _read(Path(source))
        return loaded
    return source
