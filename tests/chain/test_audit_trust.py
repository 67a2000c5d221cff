"""An auditor's trust is explicit (issue 10) and proof files are hostile input (issue 11).

Each reproduction is a test: a forged document anchored in an attacker's own AnchorRegistry,
a root anchored on the right registry by an account the auditor does not trust, a proof naming
the financing contract, proofs with 200k siblings, corrupt, non-JSON and non-UTF-8 files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from contracts.audit import verify_proof
from contracts.errors import ChainError
from contracts.merkle import MerkleTree, record_leaf
from contracts.outbox import AnchorOutbox
from contracts.proofs import MAX_SIBLINGS, make_proof, parse_proof, write_proof
from contracts.roles import add_party

DOCUMENT = b"invoice 2026-001: 1,200,000.00 CNY owed by debtor to supplier\n"
FORGED = b"invoice 2026-001: 9,900,000.00 CNY owed by debtor to attacker\n"


@pytest.fixture
def trusted(chain) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What the bank publishes: its registry and its anchoring account."""
    return {"registry": chain.registry.address, "anchorers": [chain.address("bank")]}


@pytest.fixture
def genuine(chain, data_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    """The proof of the bank's real anchoring of the invoice (with four other records)."""
    outbox = AnchorOutbox()
    outbox.enqueue(DOCUMENT, "document", "invoice.pdf")
    for i in range(4):
        outbox.enqueue(f"other {i}".encode(), "document", f"other-{i}")
    paths = outbox.flush(chain, data_dir / "proofs")
    return next(p for p in paths if json.loads(p.read_text())["ref"] == "invoice.pdf")


def _anchor_forgery(chain, registry, sender: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Anchor the forged invoice (and a decoy) on `registry` as `sender`; return its proof."""
    data_hash = keccak(FORGED)
    leaf = record_leaf("document", "invoice.pdf", data_hash)
    tree = MerkleTree.build([leaf, record_leaf("document", "decoy", keccak(b"decoy"))])
    receipt = chain.transact(chain.fn(registry, "anchor", tree.root, 2, b"document".ljust(32, b"\0")), sender)
    block = chain.w3.eth.get_block(receipt["blockNumber"])
    return make_proof(
        leaf=leaf,
        proof=tree.proof(leaf),
        root=tree.root,
        contract=registry.address,
        chain_id=chain.chain_id,
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        block=int(receipt["blockNumber"]),
        block_time=int(block["timestamp"]),
        kind="document",
        ref="invoice.pdf",
        data_hash=data_hash,
        leaf_count=2,
    )


def test_the_genuine_proof_verifies_against_the_published_trust(chain, genuine: Path, trusted) -> None:  # type: ignore[no-untyped-def]
    verified = verify_proof(genuine, chain=chain, data=DOCUMENT, **trusted)
    assert (verified.kind, verified.ref, verified.anchorer) == ("document", "invoice.pdf", chain.address("bank"))
    assert verified.contract == chain.registry.address and verified.trusted_by == "command line"


def test_a_forged_document_in_an_attackers_own_registry_is_rejected(chain, trusted) -> None:  # type: ignore[no-untyped-def]
    # Reproduction: any account deploys its own AnchorRegistry, anchors a fake leaf, writes a proof
    # pointing at it; the verifier printed "proof verified on chain" for the forged document.
    own = chain.deploy("AnchorRegistry", sender="supplier3")
    forged = _anchor_forgery(chain, own, "supplier3")
    with pytest.raises(ChainError, match="not the trusted anchoring contract"):
        verify_proof(forged, chain=chain, data=FORGED, **trusted)
    # The same forgery claiming to be in the bank's registry: never anchored there.
    with pytest.raises(ChainError, match="unknown root"):
        verify_proof({**forged, "contract": chain.registry.address}, chain=chain, data=FORGED, **trusted)
    # An auditor tricked into trusting the attacker's registry still trusts only the bank's key.
    with pytest.raises(ChainError, match="not by a trusted anchorer"):
        verify_proof(forged, chain=chain, data=FORGED, registry=own.address, anchorers=trusted["anchorers"])


def test_a_root_anchored_by_an_account_that_is_not_the_trusted_anchorer_is_rejected(chain, trusted) -> None:  # type: ignore[no-untyped-def]
    add_party(chain, "supplier3", "anchorer")  # a second anchoring key the bank did not publish
    forged = _anchor_forgery(chain, chain.registry, "supplier3")
    with pytest.raises(ChainError, match=r"anchored by 0x\w+, not by a trusted anchorer"):
        verify_proof(forged, chain=chain, data=FORGED, **trusted)
    both = {**trusted, "anchorers": [*trusted["anchorers"], chain.address("supplier3")]}
    assert verify_proof(forged, chain=chain, data=FORGED, **both).anchorer == chain.address("supplier3")


def test_a_proof_naming_the_financing_contract_is_one_line(chain, genuine: Path, trusted) -> None:  # type: ignore[no-untyped-def]
    proof = {**json.loads(genuine.read_text()), "contract": chain.financing.address}
    with pytest.raises(ChainError, match="not the trusted anchoring contract") as info:
        verify_proof(proof, chain=chain, **trusted)
    assert "\n" not in str(info.value)
    # An auditor who misconfigured the financing contract as the registry is told so.
    with pytest.raises(ChainError, match="does not answer as an AnchorRegistry"):
        verify_proof(proof, chain=chain, registry=chain.financing.address, anchorers=trusted["anchorers"])


def test_a_proof_with_the_wrong_transaction_or_block_is_rejected(chain, genuine: Path, trusted) -> None:  # type: ignore[no-untyped-def]
    proof = json.loads(genuine.read_text())
    with pytest.raises(ChainError, match="did not anchor"):
        verify_proof({**proof, "tx_hash": "0x" + "ab" * 32}, chain=chain, **trusted)
    with pytest.raises(ChainError, match="block mismatch"):
        verify_proof({**proof, "block": proof["block"] + 1}, chain=chain, **trusted)


def test_trust_comes_from_the_audit_table_or_the_environment(
    chain, genuine: Path, trusted, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from federation import config

    toml = data_dir.parent / "yinqi.toml"  # the data_dir fixture runs in its parent directory
    toml.write_text(f'[audit]\nregistry = "{trusted["registry"]}"\nanchorer = "{trusted["anchorers"][0]}"\n')
    config._load_file.cache_clear()
    assert verify_proof(genuine, chain=chain).trusted_by == "[audit] in yinqi.toml"
    toml.write_text(f'[audit]\nregistry = "{chain.financing.address}"\nanchorers = ["{trusted["anchorers"][0]}"]\n')
    config._load_file.cache_clear()
    with pytest.raises(ChainError, match="not the trusted anchoring contract"):
        verify_proof(genuine, chain=chain)
    toml.write_text(f'[audit]\nregistry = "{trusted["registry"]}"\n')
    config._load_file.cache_clear()
    with pytest.raises(ChainError, match="no anchorer"):
        verify_proof(genuine, chain=chain)
    toml.unlink()
    config._load_file.cache_clear()
    monkeypatch.setenv("YINQI_AUDIT_REGISTRY", trusted["registry"])
    monkeypatch.setenv("YINQI_AUDIT_ANCHORER", "0x" + "12" * 20 + "," + trusted["anchorers"][0])
    assert verify_proof(genuine, chain=chain).trusted_by.startswith("YINQI_AUDIT_REGISTRY")
    monkeypatch.setenv("YINQI_AUDIT_ANCHORER", "not-an-address")
    with pytest.raises(ChainError, match="expected an address"):
        verify_proof(genuine, chain=chain)


# ----- hostile proof files ---------------------------------------------------------------------


def test_a_proof_file_with_200k_siblings_is_refused_before_it_is_read(tmp_path: Path, genuine: Path) -> None:
    proof = json.loads(genuine.read_text())
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({**proof, "proof": ["0x" + "ab" * 32] * 200_000}))
    with pytest.raises(ChainError, match=r"bytes; a proof file is at most 65,536 bytes"):
        verify_proof(huge)
    with pytest.raises(
        ChainError, match=rf"200,000 siblings; an anchored tree \(< 2\*\*32 leaves\) has at most {MAX_SIBLINGS}"
    ):
        parse_proof({**proof, "proof": ["0x" + "ab" * 32] * 200_000})
    with pytest.raises(ChainError, match="33 siblings"):
        parse_proof({**proof, "proof": ["0x" + "ab" * 32] * 33})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe\x00{", "not UTF-8 text"),
        (b"", "not valid JSON"),
        (b'{"leaf": ', "not valid JSON"),
        (b"[" * 32_000 + b"]" * 32_000, "nested too deeply|expected a JSON object"),  # depends on the recursion limit
        (b"[1, 2]", "expected a JSON object"),
        (b'{"leaf": NaN}', "not valid JSON"),
    ],
)
def test_a_corrupt_proof_file_is_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "proof.json"
    path.write_bytes(content)
    with pytest.raises(ChainError, match=expected) as info:
        verify_proof(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_directory_or_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="is a directory"):
        verify_proof(tmp_path)
    with pytest.raises(ChainError, match="proof file not found"):
        verify_proof(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("proof", "0xab", "field 'proof' must be a list"),
        ("proof", [1], r"field 'proof\[0\]' must be 32 bytes"),
        ("leaf", 5, "field 'leaf' must be 32 bytes"),
        ("root", "0x" + "zz" * 32, "field 'root' must be 32 bytes"),
        ("chain_id", "131277322940537", "field 'chain_id' must be an integer"),
        ("chain_id", True, "field 'chain_id' must be an integer"),
        ("chain_id", 2**300, "field 'chain_id' must be an integer"),
        ("block", -1, "field 'block' must be an integer"),
        ("contract", "0x12", "field 'contract' must be an address"),
        ("kind", "", "field 'kind' must be text"),
        ("kind", "k" * 40, "field 'kind' must be text of 1..31 bytes"),
        ("ref", "\ud800", "field 'ref' must be text"),
        ("ref", None, "field 'ref' must be text"),
        ("leaf_count", 0, "field 'leaf_count' must be an integer"),
        ("version", 2, "proof version 2 is not supported"),
    ],
)
def test_every_field_of_a_proof_is_checked(genuine: Path, field: str, value: Any, expected: str) -> None:
    proof = {**json.loads(genuine.read_text()), field: value}
    with pytest.raises(ChainError, match=expected):
        verify_proof(proof)


def test_proofs_are_written_whole_or_not_at_all(tmp_path: Path, genuine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    proof = json.loads(genuine.read_text())
    out = tmp_path / "out"
    first = write_proof(proof, out)
    whole = first.read_text()

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        write_proof({**proof, "block_time": 1}, out)
    assert first.read_text() == whole  # the old proof is untouched
    assert sorted(p.name for p in out.iterdir()) == [first.name]  # no half-written temporary left
