"""Who may do what on chain: the parties the bank onboards and the roles they hold.

Roles are OpenZeppelin AccessControl roles: on `ReceivableFinancing` the bank's `admin`,
`financier` and `servicer`, the core enterprises (`debtor`) and `supplier`s; on
`AnchorRegistry` the `anchorer`s (and its own admin, listed as `registry-admin`). The list of
parties is rebuilt from the contracts' RoleGranted/RoleRevoked events and confirmed with
`hasRole`, so it is what the chain says, not what a local file remembers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.client import Chain
from contracts.errors import ROLE_IDS, ROLE_NAMES, ChainError

# Roles `yinqi chain party add/revoke` manages, and the contract each lives on.
FINANCING_ROLES = ("debtor", "supplier", "financier", "servicer")
REGISTRY_ROLES = ("anchorer",)
MANAGED_ROLES = FINANCING_ROLES + REGISTRY_ROLES


@dataclass
class Party:
    """An account with the roles it holds now and its on-chain name (if onboarded)."""

    account: str
    name: str
    roles: list[str] = field(default_factory=list)
    alias: str | None = None  # the local account name (`--as`), when it is one of ours

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "name": self.name, "roles": self.roles, "alias": self.alias}


def _check_role(role: str) -> None:
    if role not in MANAGED_ROLES:
        raise ChainError(f"--role {role!r}: expected one of {', '.join(MANAGED_ROLES)}")


def _contract_of(chain: Chain, role: str) -> Any:
    return chain.registry if role in REGISTRY_ROLES else chain.financing


def add_party(chain: Chain, who: str, role: str, name: str = "", *, sender: str = "bank") -> None:
    """Onboard `who` with `role` (the bank's admin only). Parties on the financing contract need
    a name (1..64 bytes); an anchorer is granted on the registry."""
    _check_role(role)
    account = chain.address(who)
    if role in REGISTRY_ROLES:
        call = chain.fn(chain.registry, "grantRole", ROLE_IDS[role], account)
        chain.transact(call, sender, action=f"party add {role}")
        return
    name = name or (who if not who.startswith("0x") else "")
    if not name or len(name.encode()) > 64:
        raise ChainError(f"party add: --name must be 1..64 bytes (the party's readable name), got {name!r}")
    call = chain.fn(chain.financing, "onboard", account, ROLE_IDS[role], name)
    chain.transact(call, sender, action=f"party add {role}")


def revoke_party(chain: Chain, who: str, role: str, *, sender: str = "bank") -> None:
    """Take `role` away from `who` (the bank's admin only); refused when it does not hold it."""
    _check_role(role)
    account = chain.address(who)
    contract = _contract_of(chain, role)
    chain.sync()
    if not contract.functions.hasRole(ROLE_IDS[role], account).call():
        raise ChainError(f"party revoke: {who} ({account}) does not hold the {role} role")
    chain.transact(chain.fn(contract, "revokeRole", ROLE_IDS[role], account), sender, action=f"party revoke {role}")


def _role_label(contract_kind: str, role_id: bytes) -> str:
    name = ROLE_NAMES.get(role_id, "0x" + role_id.hex())
    if contract_kind == "registry" and name == "admin":
        return "registry-admin"
    return name


def parties(chain: Chain) -> list[Party]:
    """Every account that holds a role now, from both contracts' role events (checked with hasRole)."""
    chain.sync()
    seen: dict[str, dict[str, tuple[Any, bytes]]] = {}
    for kind, contract in (("financing", chain.financing), ("registry", chain.registry)):
        for event_name in ("RoleGranted", "RoleRevoked"):
            for log in getattr(contract.events, event_name)().get_logs(from_block=0):
                account = log["args"]["account"]
                role_id = bytes(log["args"]["role"])
                seen.setdefault(account, {})[_role_label(kind, role_id)] = (contract, role_id)
    out = []
    for account, roles in seen.items():
        held = sorted(
            label for label, (contract, rid) in roles.items() if contract.functions.hasRole(rid, account).call()
        )
        if not held:
            continue
        name = str(chain.financing.functions.partyName(account).call())
        alias = chain.name_of(account)
        out.append(Party(account=account, name=name, roles=held, alias=None if alias == account else alias))
    return sorted(
        out, key=lambda p: (p.alias is None, list(chain.accounts).index(p.alias) if p.alias else 0, p.account)
    )
