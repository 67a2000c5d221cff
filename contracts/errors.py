"""`ChainError`: the one error type of the chain package, with a revert decoded into one
readable line: the contracts' custom errors (name and arguments, from the committed ABIs),
Solidity's `Error(string)` and `Panic(uint256)` (0x11 named "arithmetic overflow or underflow")."""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

from federation.errors import YinqiError

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# ReceivableFinancing.State, for readable WrongState(...) messages.
STATES = ("None", "Created", "FinancingRequested", "Approved", "Rejected", "Financed", "Repaid", "Defaulted")

# AccessControl role ids → the names `yinqi chain party` uses.
ROLE_IDS: dict[str, bytes] = {
    "admin": bytes(32),
    "financier": keccak(text="FINANCIER_ROLE"),
    "servicer": keccak(text="SERVICER_ROLE"),
    "debtor": keccak(text="DEBTOR_ROLE"),
    "supplier": keccak(text="SUPPLIER_ROLE"),
    "anchorer": keccak(text="ANCHORER_ROLE"),
}
ROLE_NAMES: dict[bytes, str] = {v: k for k, v in ROLE_IDS.items()}

# Solidity's built-in reverts.
ERROR_STRING = keccak(text="Error(string)")[:4]
PANIC = keccak(text="Panic(uint256)")[:4]
PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}


class ChainError(YinqiError):
    """A refused or failed chain operation; `error_name` is the contract's custom error, if any."""

    def __init__(self, message: str, *, error_name: str | None = None, args: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = args or {}


@lru_cache(maxsize=1)
def _error_table() -> dict[bytes, tuple[str, list[dict[str, Any]]]]:
    table: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
    for path in sorted(ARTIFACTS.glob("*.json")):
        for item in json.loads(path.read_text())["abi"]:
            if item.get("type") != "error":
                continue
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            table[keccak(text=signature)[:4]] = (item["name"], item["inputs"])
    return table


def _fmt(name: str, kind: str, value: Any) -> str:
    if kind == "bytes32" and isinstance(value, bytes) and value in ROLE_NAMES and "role" in name.lower():
        return ROLE_NAMES[value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if kind == "address":
        from eth_utils import to_checksum_address

        return str(to_checksum_address(value))
    if name == "current" and kind == "uint8" and 0 <= value < len(STATES):
        return STATES[value]
    return str(value)


def decode_revert(data: str | bytes | None) -> ChainError | None:
    """A ChainError for revert `data` (custom error, Error(string) or Panic(uint256)), else None."""
    from eth_abi import decode
    from eth_abi.exceptions import DecodingError

    if data is None:
        return None
    try:
        raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
    except ValueError:
        return None
    selector, body = raw[:4], raw[4:]
    try:
        if selector == PANIC:
            (code,) = decode(["uint256"], body)
            meaning = PANIC_CODES.get(code, "unknown panic code")
            return ChainError(f"reverted: Panic(0x{code:02x}): {meaning}", error_name="Panic", args={"code": code})
        if selector == ERROR_STRING:
            (reason,) = decode(["string"], body)
            return ChainError(f"reverted: {reason}", error_name="Error", args={"reason": reason})
        entry = _error_table().get(selector)
        if entry is None:
            return None
        name, inputs = entry
        values = decode([i["type"] for i in inputs], body) if inputs else ()
    except (DecodingError, ValueError, OverflowError):
        return None
    from eth_utils import to_checksum_address

    args = {
        i["name"]: (to_checksum_address(v) if i["type"] == "address" else v)
        for i, v in zip(inputs, values, strict=True)
    }
    shown = ", ".join(
        f"{i['name'].rstrip('_')}={_fmt(i['name'], i['type'], v)}" for i, v in zip(inputs, values, strict=True)
    )
    return ChainError(f"reverted: {name}({shown})", error_name=name, args=args)


def _revert_data(exc: BaseException) -> str | bytes | None:
    """Revert data from web3's exceptions, from a node's error object or from eth-tester's
    `TransactionFailed("execution reverted: b'...'")`."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):  # some nodes nest the revert data
        data = data.get("data")
    if isinstance(data, (str, bytes)):
        return data
    for arg in exc.args:
        if isinstance(arg, bytes):
            return arg
        if isinstance(arg, dict) and isinstance(arg.get("data"), str):
            return str(arg["data"])
        if isinstance(arg, str) and arg.startswith("execution reverted: b"):
            try:
                value = ast.literal_eval(arg.removeprefix("execution reverted: "))
            except (ValueError, SyntaxError):
                return None
            return value if isinstance(value, bytes) else None
    return None


def from_web3_exception(exc: BaseException, action: str) -> ChainError:
    """Turn a web3 exception raised while doing `action` into a one-line ChainError."""
    data = _revert_data(exc)
    decoded = decode_revert(data) if isinstance(data, (str, bytes)) else None
    if decoded is not None:
        decoded.args = (f"{action}: {decoded}",)
        return decoded
    text = str(exc).strip()
    message = text.splitlines()[0] if text else type(exc).__name__
    if len(message) > 300:
        message = message[:300] + "…"
    return ChainError(f"{action}: {message}")
