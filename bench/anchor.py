"""Anchoring cost: gas per anchored record for Merkle batches of 1 … 10,000 records against one
transaction per record (measured in the same run), the proofs' sizes (siblings per leaf and
proof-file bytes, counted over every leaf), and proof verification rates (local Python and the
contract's `verify` view).

    python bench/anchor.py            # embedded EVM, batches 1, 10, 100, 1000, 10000
    python bench/anchor.py --quick    # smaller run
    python bench/anchor.py --rpc URL  # same measurements on a JSON-RPC node
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

GOAL_GAS_PER_RECORD_AT_1000 = 60
ANCHOR_GAS_LIMIT = 200_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batches up to 1000, fewer baseline transactions")
    parser.add_argument("--rpc", default=None, help="Ethereum JSON-RPC URL (default: the in-memory embedded EVM)")
    args = parser.parse_args()
    os.environ.setdefault("YINQI_DATA_DIR", tempfile.mkdtemp(prefix="yinqi-bench-anchor-"))

    from contracts.client import open_chain
    from contracts.merkle import MerkleTree, record_leaf, verify
    from contracts.proofs import make_proof

    console = Console()
    chain = open_chain(args.rpc, persist=False)
    rng = random.Random(42)
    registry = chain.registry.functions
    kind = b"bench".ljust(32, b"\0")

    def records(n: int) -> list[bytes]:
        return [record_leaf("bench", f"r{rng.getrandbits(64)}", rng.randbytes(32)) for _ in range(n)]

    def anchor(root: bytes, count: int) -> tuple[int, float]:
        t0 = time.perf_counter()
        receipt = chain.transact(registry.anchor(root, count, kind), "bank", gas=ANCHOR_GAS_LIMIT)
        return int(receipt["gasUsed"]), time.perf_counter() - t0

    # Baseline: one anchor transaction per record.
    naive_n = 30 if args.quick else 100
    naive_gas, naive_time = 0, 0.0
    with console.status(f"baseline: {naive_n} records, one transaction each…"):
        for leaf in records(naive_n):
            gas, seconds = anchor(leaf, 1)
            naive_gas += gas
            naive_time += seconds
    naive_per_record = naive_gas / naive_n
    naive_tx_per_s = naive_n / naive_time

    sizes = [1, 10, 100, 1000] + ([] if args.quick else [10_000])
    table = Table(
        "records",
        "anchor txs",
        "gas per tx",
        "gas per record",
        "vs 1 tx/record",
        "tree + proofs (s)",
        "wall time (s)",
        title=f"anchoring on {chain.endpoint} (first row: baseline, one tx per record)",
    )
    table.add_row(
        "1 per tx",
        str(naive_n),
        f"{naive_per_record:,.0f}",
        f"{naive_per_record:,.0f}",
        "1.0×",
        "-",
        f"{naive_time:.2f}",
    )
    at_1000 = None
    proof_sizes: dict[int, tuple[Counter[int], list[int]]] = {}
    for n in sizes:
        leaves = records(n)
        t0 = time.perf_counter()
        tree = MerkleTree.build(leaves)
        proofs = tree.all_proofs()
        build_s = time.perf_counter() - t0
        gas, tx_s = anchor(tree.root, n)
        per_record = gas / n
        if n == 1000:
            at_1000 = per_record
        table.add_row(
            f"{n:,}",
            "1",
            f"{gas:,}",
            f"{per_record:,.1f}",
            f"{naive_per_record / per_record:,.1f}× cheaper",
            f"{build_s:.3f}",
            f"{build_s + tx_s:.2f}",
        )
        assert len(proofs) == n
        if n >= 1000:  # every leaf's proof, as the file an auditor receives
            siblings = Counter(len(p) for p in proofs.values())
            file_bytes = [
                len(
                    json.dumps(
                        make_proof(
                            leaf=leaf,
                            proof=proof,
                            root=tree.root,
                            contract=chain.registry.address,
                            chain_id=chain.chain_id,
                            tx_hash="0x" + "00" * 32,
                            block=1,
                            block_time=0,
                            kind="bench",
                            ref=f"r{i:05d}",
                            data_hash=bytes(32),
                            leaf_count=n,
                        ),
                        indent=2,
                    )
                )
                for i, (leaf, proof) in enumerate(proofs.items())
            ]
            proof_sizes[n] = (siblings, file_bytes)
    console.print(table)

    sizes_table = Table(
        "records in the tree",
        "siblings per proof (leaves)",
        "proof file bytes (min / mean / max)",
        title="proof sizes, counted over every leaf",
    )
    for n, (siblings, file_bytes) in proof_sizes.items():
        sizes_table.add_row(
            f"{n:,}",
            ", ".join(f"{k}: {v:,}" for k, v in sorted(siblings.items())),
            f"{min(file_bytes):,} / {sum(file_bytes) / len(file_bytes):,.0f} / {max(file_bytes):,}",
        )
    console.print(sizes_table)

    # Verification rates on a 1000-leaf tree.
    leaves = records(1000)
    tree = MerkleTree.build(leaves)
    proofs = tree.all_proofs()
    depths = Counter(len(proofs[leaf]) for leaf in leaves)
    t0 = time.perf_counter()
    local_ok = sum(verify(tree.root, leaf, proofs[leaf]) for leaf in leaves)
    local_rate = len(leaves) / (time.perf_counter() - t0)
    sample = leaves[: 100 if args.quick else 300]
    t0 = time.perf_counter()
    chain_ok = sum(bool(registry.verify(tree.root, leaf, proofs[leaf]).call()) for leaf in sample)
    chain_rate = len(sample) / (time.perf_counter() - t0)
    rates = Table(
        "verifier",
        "proofs checked",
        "valid",
        "proofs / s",
        "vs on chain",
        title="proof verification (1000-leaf tree; siblings per proof: "
        + ", ".join(f"{k} for {v:,} leaves" for k, v in sorted(depths.items()))
        + ")",
    )
    rates.add_row(
        "local Python (eth-utils keccak)",
        f"{len(leaves):,}",
        f"{local_ok:,}",
        f"{local_rate:,.0f}",
        f"{local_rate / chain_rate:,.0f}×",
    )
    rates.add_row(
        f"contract verify view (eth_call, {chain.endpoint.split(':')[0]})",
        f"{len(sample):,}",
        f"{chain_ok:,}",
        f"{chain_rate:,.0f}",
        "1.0×",
    )
    console.print(rates)
    console.print(
        f"one-tx-per-record throughput: {naive_tx_per_s:.1f} tx/s; "
        f"1000 records that way ≈ {1000 / naive_tx_per_s:.0f} s and {naive_per_record * 1000:,.0f} gas"
    )

    ok = (
        at_1000 is not None
        and at_1000 <= GOAL_GAS_PER_RECORD_AT_1000
        and local_ok == len(leaves)
        and chain_ok == len(sample)
    )
    verdict = "[green]met[/]" if ok else "[red]NOT met[/]"
    console.print(f"goal ≤ {GOAL_GAS_PER_RECORD_AT_1000} gas per record at 1000: {at_1000:.1f} → {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
