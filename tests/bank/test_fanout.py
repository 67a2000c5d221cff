"""`server.loanbook.fanout`: every chunk is done exactly once across processes, progress adds
up, a failure anywhere stops the job and is raised, and a script that is not guarded by
`if __name__ == "__main__"` is not re-run by the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from server.loanbook import fanout
from tests.bank.fanout_jobs import die_holding_the_lock, fail_on_chunk_two, imported_at_start, take_all

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_every_chunk_is_done_once_by_this_process_and_a_worker(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "start_method", lambda: method)
    seen: list[int] = []
    parts = fanout.run_chunks(
        40, 2, lambda chunks: take_all(3, chunks), take_all, 3, write_lock=True, progress=seen.append
    )
    assert len(parts) == 2
    done = sorted(number for part in parts for number, _ in part)
    assert done == list(range(40))
    assert {pid for _, pid in parts[0]} <= {os.getpid()}
    assert os.getpid() not in {pid for _, pid in parts[1]}
    assert seen == sorted(seen) and seen[-1] == 120  # 40 chunks x 3 lines, counted as they finish


def test_one_worker_runs_every_chunk_here_in_order() -> None:
    seen: list[int] = []
    [part] = fanout.run_chunks(
        5, 1, lambda chunks: take_all(2, chunks), take_all, 2, write_lock=True, progress=seen.append
    )
    assert part == [(n, os.getpid()) for n in range(5)]
    assert seen == [2, 4, 6, 8, 10]


def test_a_failure_in_either_process_stops_the_job_and_its_error_is_raised() -> None:
    taken: list[int] = []  # chunks this process finished
    with pytest.raises(ValueError, match="chunk 2 is broken"):
        fanout.run_chunks(
            10_000, 2, lambda chunks: _fail_here_on_two(chunks, taken), fail_on_chunk_two, None, write_lock=False
        )
    assert len(taken) < 10_000 - 2  # stopped: nobody went on to the end


def _fail_here_on_two(chunks: fanout.Chunks, taken: list[int]) -> list[tuple[int, int]]:
    while (number := chunks.take()) is not None:
        if number == 2:
            raise ValueError("chunk 2 is broken")
        taken.append(number)
        chunks.finished(1)
    return []


def test_a_single_threaded_process_forks_its_workers_and_a_threaded_one_uses_the_fork_server() -> None:
    assert threading.active_count() == 1 or fanout.start_method() == "forkserver"
    stop = threading.Event()
    serving = threading.Thread(target=stop.wait)  # a server's thread
    serving.start()
    try:
        assert fanout.start_method() == "forkserver"
    finally:
        stop.set()
        serving.join()
    if threading.active_count() == 1:  # pytest's own plugins may run threads
        assert fanout.start_method() == "fork"


def test_an_unguarded_threaded_script_is_not_run_again_by_its_workers(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import sys, threading\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from server.loanbook import fanout\n"
        "from tests.bank.fanout_jobs import take_all\n"
        "print('started', flush=True)\n"
        "stop = threading.Event()\n"
        "threading.Thread(target=stop.wait, daemon=True).start()  # a server's thread\n"
        "assert fanout.start_method() == 'forkserver'\n"
        "parts = fanout.run_chunks(6, 2, lambda c: take_all(None, c), take_all, None, write_lock=True)\n"
        "print(sorted(n for part in parts for n, _ in part))\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["started", "[0, 1, 2, 3, 4, 5]"]


@pytest.mark.timeout(300)
def test_a_worker_that_dies_holding_the_write_lock_fails_the_job_instead_of_hanging(tmp_path: Path) -> None:
    marker = tmp_path / "holding"

    def here(chunks: fanout.Chunks) -> list[tuple[int, int]]:
        deadline = time.monotonic() + 120
        while not marker.exists():  # until the worker holds the lock
            assert time.monotonic() < deadline, "the worker never took the lock"
            time.sleep(0.01)
        with chunks.writing():  # the dead worker's lock: waits, then sees the job stopped
            raise AssertionError("got a lock a dead process holds")

    with pytest.raises(BrokenProcessPool):
        fanout.run_chunks(2, 2, here, die_holding_the_lock, str(marker), write_lock=True)


def test_a_forked_worker_runs_torch_after_its_parent_used_torchs_threads(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    script = tmp_path / "forks.py"
    script.write_text(
        "import os, sys, torch\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from server.loanbook import fanout\n"
        "from tests.bank.fanout_jobs import torch_products\n"
        "assert fanout.start_method() == 'fork'\n"
        "torch.set_num_threads(2)\n"
        "torch_products(None, None)  # this process's OpenMP threads, running\n"
        "# the worker takes every chunk; one hung on the pool it copied would never return\n"
        "parts = fanout.run_chunks(2, 2, lambda chunks: [], torch_products, None, write_lock=False)\n"
        "print(sorted(n for part in parts for n, pid in part if pid != os.getpid()))\n"
    )
    # its own session: a hung worker is killed with it, not left behind
    run = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        pytest.fail("the forked worker hung")
    assert run.returncode == 0, err
    assert out.splitlines() == ["[0, 1]"]


def test_a_warmed_fork_server_has_the_review_imported_before_a_worker_starts() -> None:
    stop = threading.Event()
    serving = threading.Thread(target=stop.wait)  # a server's thread: the fork server is used
    serving.start()
    try:
        fanout.warm_workers(wait=True)
        parts = fanout.run_chunks(2, 2, lambda chunks: [], imported_at_start, list(fanout.PRELOAD), write_lock=False)
    finally:
        stop.set()
        serving.join()
    assert [number for number, _ in parts[1]] == [0, 1]  # the worker took both chunks
    assert all(preloaded == list(fanout.PRELOAD) for _, preloaded in parts[1])
