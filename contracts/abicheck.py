"""Arguments checked against a contract function's ABI types before anything is encoded.

web3 reports a value that does not fit (2**256 for a uint256, a due date past uint64) as a
`MismatchedABI` listing every overload; here the same mistake is one line naming the
function, the parameter, the value and the range its type allows.
"""

from __future__ import annotations

import re
from typing import Any

from contracts.errors import ChainError

_INT = re.compile(r"^(u?)int(\d*)$")
_BYTES = re.compile(r"^bytes(\d+)$")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def _range(unsigned: bool, bits: int) -> tuple[int, int]:
    return (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _range_text(unsigned: bool, bits: int) -> str:
    if bits < 64:
        low, high = _range(unsigned, bits)
        return f"{low} … {high}"
    return f"0 … 2**{bits} - 1" if unsigned else f"-2**{bits - 1} … 2**{bits - 1} - 1"


def check_value(kind: str, name: str, value: Any, where: str) -> None:
    """Raise ChainError unless `value` fits the ABI type `kind`."""
    if kind.endswith("[]"):
        if not isinstance(value, (list, tuple)):
            raise ChainError(f"{where}: {name} must be a list of {kind[:-2]}, got {_shown(value)}")
        for i, item in enumerate(value):
            check_value(kind[:-2], f"{name}[{i}]", item, where)
        return
    match = _INT.match(kind)
    if match:
        unsigned, bits = match.group(1) == "u", int(match.group(2) or 256)
        low, high = _range(unsigned, bits)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ChainError(f"{where}: {name} must be an integer ({kind}), got {_shown(value)}")
        if not low <= value <= high:
            raise ChainError(f"{where}: {name}={_shown(value)} is outside {kind} ({_range_text(unsigned, bits)})")
        return
    match = _BYTES.match(kind)
    if match:
        size = int(match.group(1))
        if not isinstance(value, (bytes, bytearray)) or len(value) > size:
            raise ChainError(f"{where}: {name} must be at most {size} bytes ({kind}), got {_shown(value)}")
        return
    if kind == "address":
        from web3 import Web3

        if not isinstance(value, str) or not Web3.is_address(value):
            raise ChainError(f"{where}: {name} must be an address (0x + 40 hex), got {_shown(value)}")
        return
    if kind == "bool" and not isinstance(value, bool):
        raise ChainError(f"{where}: {name} must be true or false, got {_shown(value)}")
    if kind == "string" and not isinstance(value, str):
        raise ChainError(f"{where}: {name} must be text, got {_shown(value)}")


def bound(contract: Any, name: str, *args: Any, where: str | None = None) -> Any:
    """`contract.functions.<name>(*args)` after checking each argument against the ABI.

    Checked before web3 builds the call, which is where an out-of-range value would fail.
    """
    where = where or name
    candidates = [
        item
        for item in contract.abi
        if item.get("type") == "function" and item.get("name") == name and len(item.get("inputs", [])) == len(args)
    ]
    if not candidates:
        raise ChainError(f"{where}: the contract has no function {name} taking {len(args)} argument(s)")
    for spec, value in zip(candidates[0]["inputs"], args, strict=True):
        check_value(spec["type"], spec.get("name") or "argument", value, where)
    return getattr(contract.functions, name)(*args)
