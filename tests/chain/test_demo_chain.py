"""The chain part of `yinqi demo` prints what it read back from the chain, and its checks hold."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from yinqi import demo_chain


def test_the_chain_demo_prints_figures_read_back_from_the_chain(tmp_path: Path) -> None:
    console = Console(record=True, width=400)
    demo_chain.run(tmp_path / "chain", console)
    text = console.export_text()
    assert "(bug)" not in text
    assert "#1 1,200,000.00 → #1 900,000.00 (supplier) + #2 300,000.00 (supplier2)" in text
    assert "refused: AlreadyFinanced" in text and "refused: AccessControlUnauthorizedAccount" in text
    assert "8 proofs; 3 anchor transactions on chain holding 1 document, 2 receivable, 5 alert" in text
    assert "anchored by bank" in text and "rejected: tampered leaf" in text
    assert "s of chain time (measured)" in text
