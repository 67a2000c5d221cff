"""Jobs for `server.loanbook.fanout` tests: module-level, so a spawned worker can import them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from server.loanbook.fanout import Chunks


def take_all(payload: int | None, chunks: Chunks) -> list[tuple[int, int]]:
    """(chunk, pid) for every chunk this process took; each chunk counts `payload` lines (1 if None)."""
    done = []
    while (number := chunks.take()) is not None:
        with chunks.writing():
            done.append((number, os.getpid()))
        chunks.finished(payload or 1)
    return done


def fail_on_chunk_two(payload: None, chunks: Chunks) -> list[tuple[int, int]]:
    done = []
    while (number := chunks.take()) is not None:
        if number == 2:
            raise ValueError("chunk 2 is broken")
        done.append((number, os.getpid()))
        chunks.finished(1)
    return done


def die_holding_the_lock(marker: str, chunks: Chunks) -> list[tuple[int, int]]:
    """Take the write lock, say so in `marker`, and die without releasing it (a killed worker)."""
    with chunks.writing():
        Path(marker).write_text("holding")
        os._exit(1)


def torch_products(payload: None, chunks: Chunks | None) -> list[tuple[int, int]]:
    """A matrix product big enough for torch to run it on its threads, then one per chunk."""
    import torch

    matrix = torch.rand(1500, 1500)
    float((matrix @ matrix).sum())
    done = []
    while chunks is not None and (number := chunks.take()) is not None:
        float((matrix @ matrix).sum())
        done.append((number, os.getpid()))
        chunks.finished(1)
    return done


def imported_at_start(modules: list[str], chunks: Chunks) -> list[tuple[int, list[str]]]:
    """Which of `modules` this worker had imported before its job began (a fork server's
    preload), then every chunk."""
    before = [name for name in modules if name in sys.modules]
    done = []
    while (number := chunks.take()) is not None:
        done.append((number, before))
        chunks.finished(1)
    return done
