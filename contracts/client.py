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

from contracts.abicheck import bound
from contracts.errors import ARTIFACTS, ROLE_IDS, ChainError, from_web3_exception
from contracts.sender import account_lock, send_with_nonce
from federation.config import data_dir, section, setting

# Account names, in account order. The bank deploys, administers, finances and anchors; the
# others are parties onboarded at deployment with the on-chain role beside them (the auditor
# holds none). Names map to accounts in `<data dir>/chain/roles.json`.
DEFAULT_ROLES = ("bank", "debtor", "supplier", "supplier2", "supplier3", "auditor")
ONBOARDED = {"debtor": "debtor", "supplier": "supplier", "supplier2": "supplier", "supplier3": "supplier"}
# Hardhat's and anvil's well-known development mnemonic: their funded accounts.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEPLOY_GAS = 6_000_000


def artifact(name: str) -> dict[str, Any]:
    """ABI and bytecode of a compiled contract (committed in contracts/artifacts)."""
    path = ARTIFACTS / f"{name}.json"
    if not path.exists():
        raise ChainError(f"{path}: artifact missing; run `python -m contracts.build`")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


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
    _key: str = ""
    deployed_now: bool = False
    lock_dir: Path | None = None  # where account locks live (None: this process only)

    @property
    def embedded(self) -> bool:
        return self.tester is not None

    @property
    def chain_id(self) -> int:
        if not self._chain_id:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    @property
    def key(self) -> str:
        """`chain id:genesis hash`: names this chain in deployments.json and lock files."""
        if not self._key:
            self._key = _chain_key(self.w3)
        return self._key

    def fn(self, contract: Any, name: str, *args: Any) -> Any:
        """A call of `contract`'s function `name`, its arguments checked against the ABI first."""
        return bound(contract, name, *args)

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
            return str(Web3.to_checksum_address(who))
        return str(self.account(who).address)

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

        The sender's account lock is held from the nonce to the receipt (see contracts.sender),
        so concurrent commands signing for one account neither collide nor double-send. Without
        `gas` the call is estimated first, which surfaces a revert as its decoded custom error
        before anything is sent.
        """
        action = action or f"{call.fn_name}"
        acct = self.account(sender)
        try:
            with account_lock(self.lock_dir, self.key, acct.address):
                self.sync()
                if gas is None:
                    gas = int(call.estimate_gas({"from": acct.address}) * 1.2) + 10_000
                fixed_gas = gas

                def build(nonce: int) -> dict[str, Any]:
                    return dict(call.build_transaction(self._tx_fields(acct.address, fixed_gas, nonce)))

                return send_with_nonce(self.w3, acct, build, action, on_retry=self.sync)
        except ChainError:
            raise
        except Exception as exc:  # web3 raises many types; all become one line
            raise from_web3_exception(exc, action) from None

    def _tx_fields(self, address: str, gas: int, nonce: int) -> dict[str, Any]:
        return {
            "from": address,
            "gas": gas,
            "nonce": nonce,
            "chainId": self.chain_id,
            "maxFeePerGas": 50 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "type": 2,
        }

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
        action = f"deploy {name}"
        try:
            with account_lock(self.lock_dir, self.key, acct.address):
                self.sync()

                def build(nonce: int) -> dict[str, Any]:
                    return dict(
                        factory.constructor().build_transaction(self._tx_fields(acct.address, DEPLOY_GAS, nonce))
                    )

                receipt = send_with_nonce(self.w3, acct, build, action, on_retry=self.sync)
        except ChainError:
            raise
        except Exception as exc:
            raise from_web3_exception(exc, action) from None
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])

    def bind(self, name: str, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=artifact(name)["abi"])


def _role_accounts(dev_keys: bool) -> dict[str, Any]:
    """The named accounts: eth-tester's funded keys on the embedded chain (also when it is
    served by `yinqi chain node`), else the configured mnemonic's (Hardhat/anvil by default)."""
    from eth_account import Account

    roles_file = chain_dir() / "roles.json"
    names = list(DEFAULT_ROLES)
    if not roles_file.exists():  # written once so users can see (and rename) the roles
        _write_atomically(
            roles_file,
            json.dumps(
                {
                    "roles": names,
                    "note": "account names in account order; the first is the bank (deployer, admin, financier, anchorer)",
                },
                indent=2,
            )
            + "\n",
        )
    else:
        try:
            names = list(json.loads(roles_file.read_text())["roles"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ChainError(f'{roles_file}: expected {{"roles": [names in account order]}} ({exc})') from None
    if dev_keys and len(names) > 10:
        raise ChainError(f"{roles_file}: the embedded chain has 10 funded accounts, {len(names)} roles given")
    count = len(names)
    if dev_keys:
        keys = [i.to_bytes(32, "big") for i in range(1, count + 1)]  # eth-tester's funded accounts
        accounts = [Account.from_key(k) for k in keys]
    else:
        Account.enable_unaudited_hdwallet_features()
        mnemonic = str(chain_setting("mnemonic", DEV_MNEMONIC))
        accounts = [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]
    return dict(zip(names, accounts, strict=True))


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers see all or nothing."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _deployments_file() -> Path:
    return chain_dir() / "deployments.json"


def _chain_key(w3: Any) -> str:
    genesis = w3.eth.get_block(0)
    return f"{int(w3.eth.chain_id)}:{bytes(genesis['hash']).hex()}"


def http_web3(rpc: str) -> Any:
    """A Web3 over HTTP that answers (or a ChainError saying the node cannot be reached)."""
    from web3 import HTTPProvider, Web3

    if not rpc.startswith(("http://", "https://")):
        raise ChainError(f"--rpc {rpc!r}: expected an http:// or https:// URL of an Ethereum JSON-RPC node")
    w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    try:
        _ = w3.eth.chain_id
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ChainError(f"cannot reach the Ethereum JSON-RPC node at {rpc}: {first}") from None
    return w3


def serves_embedded_chain(w3: Any) -> bool:
    """True when the node is eth-tester (the embedded chain served by `yinqi chain node`)."""
    try:
        return str(w3.client_version).startswith("EthereumTester")
    except Exception:
        return False


def _connect(rpc: str | None, persist: bool | None) -> tuple[Any, str, Any]:
    from web3 import EthereumTesterProvider, Web3

    if rpc:
        return http_web3(rpc), rpc, None
    from contracts.embedded import JournaledTester

    persist = _persist_default() if persist is None else persist
    path = chain_dir() / "embedded.jsonl" if persist else None
    tester = JournaledTester(path)
    return Web3(EthereumTesterProvider(tester)), f"embedded:{path}" if path else "embedded:memory", tester


def connect(rpc: str | None = None, *, persist: bool | None = None) -> Chain:
    """Connect to the configured chain with the named accounts, without binding contracts.

    `rpc` (else `YINQI_CHAIN_RPC` / `[chain] rpc`) selects a JSON-RPC node; without one the
    embedded EVM is used, journaled in the data dir unless `persist=False` or
    `YINQI_CHAIN_PERSIST=0`. (The auditor's read-only view is `contracts.trust.auditor_chain`.)
    """
    rpc = rpc or chain_setting("rpc")
    w3, endpoint, tester = _connect(rpc, persist)
    dev_keys = tester is not None or serves_embedded_chain(w3)
    in_memory = tester is not None and tester.path is None
    return Chain(
        w3=w3,
        endpoint=endpoint,
        accounts=_role_accounts(dev_keys),
        tester=tester,
        lock_dir=None if in_memory else chain_dir() / "locks",
    )


def _recorded(chain: Chain) -> dict[str, str] | None:
    store = _deployments_file()
    try:
        known = json.loads(store.read_text()) if store.exists() else {}
    except ValueError:
        raise ChainError(f"{store}: not valid JSON; remove it to redeploy") from None
    entry = known.get(chain.key)
    if entry and all(chain.w3.eth.get_code(a) not in (b"", None) for a in entry.values()):
        return dict(entry)
    return None


def open_chain(rpc: str | None = None, *, persist: bool | None = None, deploy: bool = True) -> Chain:
    """Connect (see `connect`) and bind our contracts, deploying them on first use.

    Addresses are recorded per chain (chain id + genesis hash) in `<data dir>/chain/deployments.json`;
    concurrent first uses deploy once (the deployment holds a lock and re-reads the record).
    """
    chain = connect(rpc, persist=persist)
    entry = _recorded(chain)
    if entry is None:
        if not deploy:
            raise ChainError(f"no yinqi contracts deployed on {chain.endpoint}; run `yinqi chain deploy` first")
        with account_lock(chain.lock_dir, chain.key, "deployment"):
            entry = _recorded(chain)
            if entry is None:
                deploy_contracts(chain)
                entry = {"ReceivableFinancing": chain.financing.address, "AnchorRegistry": chain.registry.address}
                if chain.lock_dir is not None:  # an in-memory chain dies with us
                    store = _deployments_file()
                    known = json.loads(store.read_text()) if store.exists() else {}
                    known[chain.key] = entry
                    _write_atomically(store, json.dumps(known, indent=2) + "\n")
                return chain
    chain.financing = chain.bind("ReceivableFinancing", entry["ReceivableFinancing"])
    chain.registry = chain.bind("AnchorRegistry", entry["AnchorRegistry"])
    return chain


def deploy_contracts(chain: Chain) -> None:
    """Deploy both contracts from the bank's account (admin, financier, servicer, anchorer) and
    onboard the named development parties with their roles."""
    chain.financing = chain.deploy("ReceivableFinancing")
    chain.registry = chain.deploy("AnchorRegistry")
    for name, role in ONBOARDED.items():
        if name in chain.accounts:
            call = chain.fn(chain.financing, "onboard", chain.accounts[name].address, ROLE_IDS[role], name)
            chain.transact(call, "bank", gas=200_000, action=f"onboard {name}")
    chain.deployed_now = True
