"""The web3.py client: one `Chain` over the embedded EVM or any Ethereum JSON-RPC node.

`open_chain()` connects (embedded py-evm by default, `--rpc URL` / `YINQI_CHAIN_RPC` for a
node), finds the deployed contracts recorded in the data dir or deploys them on first use, and
signs every transaction locally with the named role accounts (`bank`, `debtor`, `supplier`, ...),
so the same code runs against eth-tester, Hardhat, Ganache or a permissioned network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import ARTIFACTS, ChainError, from_web3_exception
from federation.config import data_dir, section, setting

# Role names, in account order. The bank deploys, administers and anchors; the others are
# enterprises registered at deployment. Names map to accounts in `<data dir>/chain/roles.json`.
DEFAULT_ROLES = ("bank", "debtor", "supplier", "supplier2", "supplier3", "auditor")
ENTERPRISES = ("debtor", "supplier", "supplier2", "supplier3")
# Hardhat's and anvil's well-known development mnemonic: their funded accounts.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEPLOY_GAS = 6_000_000


def artifact(name: str) -> dict[str, Any]:
    """ABI and bytecode of a compiled contract (committed in contracts/artifacts)."""
    path = ARTIFACTS / f"{name}.json"
    if not path.exists():
        raise ChainError(f"{path}: artifact missing; run `python -m contracts.build`")
    return json.loads(path.read_text())


def chain_dir() -> Path:
    path = data_dir() / "chain"
    path.mkdir(parents=True, exist_ok=True)
    return path


def chain_setting(name: str, default: Any = None) -> Any:
    """`YINQI_CHAIN_<NAME>`, else `[chain] <name>` in yinqi.toml, else `default`."""
    env = setting(f"chain_{name}")  # reads the YINQI_CHAIN_<NAME> environment variable
    if env is not None:
        return env
    return section("chain").get(name, default)


def _persist_default() -> bool:
    return str(chain_setting("persist", True)).lower() not in {"0", "false", "no", "off"}


@dataclass
class Chain:
    """A connected chain with our two contracts and the role accounts that sign for us."""

    w3: Any
    endpoint: str
    accounts: dict[str, Any]
    financing: Any = None
    registry: Any = None
    tester: Any = None  # the JournaledTester when embedded
    _chain_id: int = 0
    deployed_now: bool = False

    @property
    def embedded(self) -> bool:
        return self.tester is not None

    @property
    def chain_id(self) -> int:
        if not self._chain_id:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    # -- accounts ----------------------------------------------------------------------------

    def account(self, who: str) -> Any:
        """The local account for a role name, a 0x address of a known account, or an index."""
        if who in self.accounts:
            return self.accounts[who]
        if who == "bank" and self.accounts:  # the first role is the bank, whatever it is called
            return next(iter(self.accounts.values()))
        for acct in self.accounts.values():
            if acct.address.lower() == who.lower():
                return acct
        raise ChainError(f"--as {who!r}: unknown account; expected one of {sorted(self.accounts)}")

    def address(self, who: str) -> str:
        """An address for a role name, or a 0x address given literally."""
        from web3 import Web3

        if who.startswith("0x") and len(who) == 42:
            if not Web3.is_address(who):
                raise ChainError(f"{who}: not a valid address")
            return Web3.to_checksum_address(who)
        return self.account(who).address

    def name_of(self, address: str) -> str:
        for name, acct in self.accounts.items():
            if acct.address.lower() == str(address).lower():
                return name
        return str(address)

    # -- transactions --------------------------------------------------------------------------

    def sync(self) -> None:
        """See blocks other processes added to the embedded chain (no-op for a node)."""
        if self.tester is not None:
            self.tester.sync()

    def now(self) -> int:
        """Timestamp of the latest block."""
        self.sync()
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def transact(self, call: Any, sender: str, *, gas: int | None = None, action: str | None = None) -> Any:
        """Sign and send a contract call as `sender`; returns the receipt.

        Without `gas` the call is estimated first, which surfaces a revert as its decoded custom
        error before anything is sent.
        """
        action = action or f"{call.fn_name}"
        acct = self.account(sender)
        try:
            self.sync()
            if gas is None:
                gas = int(call.estimate_gas({"from": acct.address}) * 1.2) + 10_000
            tx = call.build_transaction(self._tx_fields(acct.address, gas))
            return self.send_signed(acct, tx, action)
        except ChainError:
            raise
        except Exception as exc:  # web3 raises many types; all become one line
            raise from_web3_exception(exc, action) from None

    def _tx_fields(self, address: str, gas: int) -> dict[str, Any]:
        return {
            "from": address,
            "gas": gas,
            "nonce": self.w3.eth.get_transaction_count(address, "pending"),
            "chainId": self.chain_id,
            "maxFeePerGas": 50 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "type": 2,
        }

    def send_signed(self, acct: Any, tx: dict[str, Any], action: str) -> Any:
        signed = acct.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.05)
        if receipt["status"] != 1:
            raise ChainError(f"{action}: transaction {tx_hash.hex()} reverted (gas used {receipt['gasUsed']})")
        return receipt

    def time_travel(self, timestamp: int) -> None:
        """Move the chain's clock forward: a block with `timestamp` is mined (tests, demos)."""
        if self.tester is not None:
            self.tester.time_travel(int(timestamp) + 1)  # eth-tester mines its block at T - 1
            return
        try:
            self.w3.provider.make_request("evm_setNextBlockTimestamp", [int(timestamp)])
            self.w3.provider.make_request("evm_mine", [])
        except Exception as exc:
            raise ChainError(
                f"time travel: {self.endpoint} does not support evm_setNextBlockTimestamp ({exc})"
            ) from None

    # -- deployment -----------------------------------------------------------------------------

    def deploy(self, name: str, sender: str = "bank") -> Any:
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        acct = self.account(sender)
        tx = factory.constructor().build_transaction(self._tx_fields(acct.address, DEPLOY_GAS))
        receipt = self.send_signed(acct, tx, f"deploy {name}")
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])

    def bind(self, name: str, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=artifact(name)["abi"])


def _role_accounts(embedded: bool) -> dict[str, Any]:
    from eth_account import Account

    roles_file = chain_dir() / "roles.json"
    names = list(DEFAULT_ROLES)
    if not roles_file.exists():  # written once so users can see (and rename) the roles
        roles_file.write_text(
            json.dumps(
                {
                    "roles": names,
                    "note": "role names in account order; the first is the bank (deployer, admin, anchorer)",
                },
                indent=2,
            )
            + "\n"
        )
    else:
        try:
            names = list(json.loads(roles_file.read_text())["roles"])
        except (ValueError, KeyError) as exc:
            raise ChainError(f'{roles_file}: expected {{"roles": [names in account order]}} ({exc})') from None
    if embedded and len(names) > 10:
        raise ChainError(f"{roles_file}: the embedded chain has 10 funded accounts, {len(names)} roles given")
    count = len(names)
    if embedded:
        keys = [i.to_bytes(32, "big") for i in range(1, count + 1)]  # eth-tester's funded accounts
        accounts = [Account.from_key(k) for k in keys]
    else:
        Account.enable_unaudited_hdwallet_features()
        mnemonic = str(chain_setting("mnemonic", DEV_MNEMONIC))
        accounts = [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]
    return dict(zip(names, accounts))


def _deployments_file() -> Path:
    return chain_dir() / "deployments.json"


def _chain_key(w3: Any) -> str:
    genesis = w3.eth.get_block(0)
    return f"{int(w3.eth.chain_id)}:{genesis['hash'].hex()}"


def _connect(rpc: str | None, persist: bool | None) -> tuple[Any, str, Any]:
    from web3 import EthereumTesterProvider, HTTPProvider, Web3

    if rpc:
        w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": 30}))
        try:
            w3.eth.chain_id
        except Exception as exc:
            raise ChainError(f"cannot reach the Ethereum JSON-RPC node at {rpc}: {str(exc).splitlines()[0]}") from None
        return w3, rpc, None
    from contracts.embedded import JournaledTester

    persist = _persist_default() if persist is None else persist
    path = chain_dir() / "embedded.jsonl" if persist else None
    tester = JournaledTester(path)
    return Web3(EthereumTesterProvider(tester)), f"embedded:{path}" if path else "embedded:memory", tester


def connect(rpc: str | None = None, *, persist: bool | None = None) -> Chain:
    """Connect to the configured chain without binding contracts (the auditor's view).

    `rpc` (else `YINQI_CHAIN_RPC` / `[chain] rpc`) selects a JSON-RPC node; without one the
    embedded EVM is used, journaled in the data dir unless `persist=False` or
    `YINQI_CHAIN_PERSIST=0`.
    """
    rpc = rpc or chain_setting("rpc")
    w3, endpoint, tester = _connect(rpc, persist)
    return Chain(w3=w3, endpoint=endpoint, accounts=_role_accounts(tester is not None), tester=tester)


def open_chain(rpc: str | None = None, *, persist: bool | None = None, deploy: bool = True) -> Chain:
    """Connect (see `connect`) and bind our contracts, deploying them on first use.

    Addresses are recorded per chain (chain id + genesis hash) in `<data dir>/chain/deployments.json`.
    """
    chain = connect(rpc, persist=persist)
    w3 = chain.w3
    key = _chain_key(w3)
    store = _deployments_file()
    known = json.loads(store.read_text()) if store.exists() else {}
    entry = known.get(key)
    if entry and all(w3.eth.get_code(a) not in (b"", None) for a in entry.values()):
        chain.financing = chain.bind("ReceivableFinancing", entry["ReceivableFinancing"])
        chain.registry = chain.bind("AnchorRegistry", entry["AnchorRegistry"])
        return chain
    if not deploy:
        raise ChainError(f"no yinqi contracts deployed on {chain.endpoint}; run `yinqi chain deploy` first")
    deploy_contracts(chain)
    if chain.tester is None or chain.tester.path is not None:  # an in-memory chain dies with us
        known[key] = {"ReceivableFinancing": chain.financing.address, "AnchorRegistry": chain.registry.address}
        store.write_text(json.dumps(known, indent=2) + "\n")
    return chain


def deploy_contracts(chain: Chain) -> None:
    """Deploy both contracts from the bank's account and register the named enterprises."""
    chain.financing = chain.deploy("ReceivableFinancing")
    chain.registry = chain.deploy("AnchorRegistry")
    for name in list(chain.accounts)[1 : 1 + len(ENTERPRISES)]:  # debtor, supplier, supplier2, supplier3
        chain.transact(
            chain.financing.functions.registerEnterprise(chain.accounts[name].address, name), "bank", gas=200_000
        )
    chain.deployed_now = True
