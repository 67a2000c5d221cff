"""A small vertical world for tests: synthetic halves, a PSI session run over the real service."""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from clients.vertical.psi_client import run_psi
from clients.vertical.store import SessionBook
from federation.synth import generate_vertical
from federation.vertical.config import PlatformNodeConfig, VerticalConfig
from federation.vertical.data import load_party
from server.vertical.psi_service import register
from server.vertical.store import PsiStore


@dataclass
class World:
    root: Path
    bank_file: Path
    platform_file: Path
    bank_db: str
    platform_db: str
    session: str
    shared: list[str]

    def config(self, **changes: object) -> VerticalConfig:
        values: dict[str, object] = {
            "bank_data": self.bank_file,
            "session": self.session,
            "out": self.root / "top",
            "bank_db": self.bank_db,
            "epochs": 3,
            "batch_size": 32,
            "reproducible": True,
        }
        values.update(changes)
        return VerticalConfig(**values)  # type: ignore[arg-type]

    def fresh_bank_db(self, path: Path) -> str:
        """A new bank database holding only this world's PSI result (fresh ledgers)."""
        from federation.psi.protocol import PsiResult

        url = f"sqlite:///{path}"
        run = PsiStore(self.bank_db).get(self.session)
        PsiStore(url).save(
            self.session, run.platform, PsiResult(run.cardinality, run.bank_count, run.platform_count, run.matches)
        )
        return url

    def fresh_platform_db(self, path: Path) -> str:
        """A new platform database holding only this world's PSI session (fresh ledger)."""
        url = f"sqlite:///{path}"
        mine = SessionBook(self.platform_db).get(self.session)
        SessionBook(url).save(self.session, mine.bank, mine.order, mine.bank_count, mine.cardinality)
        return url

    def node(self, **changes: object) -> PlatformNodeConfig:
        values: dict[str, object] = {
            "data_path": self.platform_file,
            "platform_name": "platform-a",
            "platform_db": self.platform_db,
            "model_dir": self.root / "bottom",
        }
        values.update(changes)
        return PlatformNodeConfig(**values)  # type: ignore[arg-type]


def make_world(root: Path, merchants: int = 800, shared: float = 0.7, seed: int = 1) -> World:
    synth = generate_vertical(root / "data", merchants, merchants, shared, seed)
    bank_db, platform_db = f"sqlite:///{root / 'bank.db'}", f"sqlite:///{root / 'platform.db'}"
    bank = load_party(synth.bank_file, labelled=True)
    platform = load_party(synth.platform_file, labelled=False)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    register(server, PsiStore(bank_db), lambda: bank.ids, insecure=True)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        outcome = run_psi(
            grpc.insecure_channel(f"127.0.0.1:{port}"), platform.ids, bank="loopback", book=SessionBook(platform_db)
        )
    finally:
        server.stop(0)
    shared_ids = sorted(set(bank.ids) & set(platform.ids))
    return World(root, synth.bank_file, synth.platform_file, bank_db, platform_db, outcome.session_id, shared_ids)
