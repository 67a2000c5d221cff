"""`ChainError`: the one error type of the chain package, with the contracts' custom errors
decoded into one readable line (name and arguments) from the committed ABIs."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from federation.errors import YinqiError

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# ReceivableFinancing.State, for readable WrongState(...) messages.
STATES = ("None", "Created", "FinancingRequested", "Approved", "Rejected", "Financed", "Repaid", "Defaulted")


class ChainError(YinqiError):
    """A refused or failed chain operation; `error_name` is the contract's custom error, if any."""

    def __init__(self, message: str, *, error_name: str | None = None, args: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = args or {}


@lru_cache(maxsize=1)
def _error_table() -> dict[bytes, tuple[str, list[dict[str, Any]]]]:
    from eth_utils import keccak

    table: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
    for path in sorted(ARTIFACTS.glob("*.json")):
        for item in json.loads(path.read_text())["abi"]:
            if item.get("type") != "error":
                continue
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            table[keccak(text=signature)[:4]] = (item["name"], item["inputs"])
    return table


def _fmt(name: str, kind: str, value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if name == "current" and kind == "uint8" and 0 <= value < len(STATES):
        return STATES[value]
    return str(value)


def decode_revert(data: str | bytes | None) -> ChainError | None:
    """A ChainError for revert `data` carrying one of our custom errors, else None."""
    from eth_abi import decode

    if data is None:
        return None
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
    entry = _error_table().get(raw[:4])
    if entry is None:
        return None
    name, inputs = entry
    values = decode([i["type"] for i in inputs], raw[4:]) if inputs else ()
    args = {i["name"]: v for i, v in zip(inputs, values)}
    shown = ", ".join(f"{i['name']}={_fmt(i['name'], i['type'], v)}" for i, v in zip(inputs, values))
    return ChainError(f"reverted: {name}({shown})", error_name=name, args=args)


def _revert_data(exc: Exception) -> str | bytes | None:
    """Revert data from web3's exceptions, from a node's error object or from eth-tester's
    `TransactionFailed("execution reverted: b'...'")`."""
    import ast

    data = getattr(exc, "data", None)
    if isinstance(data, dict):  # some nodes nest the revert data
        data = data.get("data")
    if isinstance(data, (str, bytes)):
        return data
    for arg in exc.args:
        if isinstance(arg, bytes):
            return arg
        if isinstance(arg, dict) and isinstance(arg.get("data"), str):
            return arg["data"]
        if isinstance(arg, str) and arg.startswith("execution reverted: b"):
            try:
                value = ast.literal_eval(arg.removeprefix("execution reverted: "))
            except (ValueError, SyntaxError):
                return None
            return value if isinstance(value, bytes) else None
    return None


def from_web3_exception(exc: Exception, action: str) -> ChainError:
    """Turn a web3 exception raised while doing `action` into a one-line ChainError."""
    data = _revert_data(exc)
    decoded = decode_revert(data) if isinstance(data, (str, bytes)) else None
    if decoded is not None:
        decoded.args = (f"{action}: {decoded}",)
        return decoded
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ChainError(f"{action}: {message}")
