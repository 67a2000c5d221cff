"""Spreading a batch job's chunks over processes: the monthly review on every core.

A review is CPU-bound Python (scoring, decisions, reasons, building rows) plus one database
transaction per chunk, so one process uses one core. `run_chunks` runs the same per-chunk loop
in `workers` processes. The caller's own process is one of them (its loaded model is not
wasted while the others start), and every process takes the next chunk number from a shared
counter: a worker that started late, or met slower chunks, simply takes fewer. On SQLite, whose
one writer would otherwise be fought over through its busy-wait (and a chunk's transaction can
outlast the busy timeout), a shared lock hands the write over: one process writes a chunk while
the others score theirs. PostgreSQL needs no such lock (a chunk locks its own rows).

How workers start (`start_method`): where the caller runs one thread (the CLI, a script), as a
`fork` of it, which has the caller's imports already (torch alone takes two seconds to import)
and starts at once. Where it runs more (the bank's gRPC server), a fork would copy whatever lock
another thread held at that moment: workers are forked instead from a fork server, a
one-thread process that imported the bank's review and torch once (`PRELOAD`), which the gRPC
server starts when it is built (`warm_workers`), so that a review's workers start at once
there too; `spawn`, a fresh interpreter per worker, where the platform has neither. A worker
does not re-run the caller's main script (spawn's default, which needs an
`if __name__ == "__main__"` guard in every script that reviews): what it runs lives in
importable modules. A failure in any process stops the others taking new chunks; the chunks
already committed stay (a review resumes where it stopped) and the first error is raised.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from multiprocessing import forkserver
from typing import Any, Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")
Progress = Callable[[int], None]  # lines finished so far, across every process


PRELOAD = ("server.loanbook.review", "torch")  # what the fork server imports for its workers
_HAS_FORK_SERVER = "forkserver" in multiprocessing.get_all_start_methods()  # not on Windows
if _HAS_FORK_SERVER:
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))


def start_method() -> str:
    """`fork` where this process runs one thread, else `forkserver`, else `spawn`, as the
    platform allows (see the module docstring). One Python thread: the native threads that
    numpy's BLAS and pyarrow's allocator start on import register their own fork handlers;
    torch's OpenMP threads do not (`_start_worker`)."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "forkserver" if _HAS_FORK_SERVER else "spawn"


def warm_workers(*, wait: bool = False) -> None:
    """Start the fork server now, in a process that runs threads (the bank's gRPC server), so
    that its imports (`PRELOAD`, a few seconds) are done before a review needs workers. It
    imports them in its own process, without delaying this one; `wait`: return once it has
    (a process forked from it has started and exited)."""
    if not _HAS_FORK_SERVER:
        return
    with _main_not_rerun():
        forkserver.ensure_running()
        if wait:
            ready = multiprocessing.get_context("forkserver").Process(target=int)  # forked after the imports
            ready.start()
            ready.join()


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Stopped(Exception):
    """The job stopped (another process failed) while this one waited to write."""


class Chunks(ABC):
    """One process's view of a job's chunks: the next chunk, progress, the write hand-over."""

    total: int  # chunks in the job

    @abstractmethod
    def take(self) -> int | None:
        """The next chunk number, or None when none is left or the job stopped."""

    @abstractmethod
    def finished(self, lines: int) -> None:
        """Count `lines` done (the chunk just taken)."""

    @property
    def takes_turns(self) -> bool:
        """Whether processes write one at a time (`writing` waits for the others' turns): then
        work done before the turn runs while another process writes."""
        return False

    def writing(self) -> Any:
        """Hold while a chunk's transaction is open (a no-op where the database needs none)."""
        return nullcontext()


class SharedChunks(Chunks):
    """Chunks shared by several processes: a shared counter, a stop flag, and on SQLite the
    write lock that hands the one writer's turn over."""

    def __init__(
        self,
        total: int,
        counter: Any,
        stop: Any,
        lock: Any | None,
        finished: Callable[[int], None],
        waiting: Callable[[], None] = lambda: None,
    ) -> None:
        self.total = total
        self._counter, self.stop, self._lock, self._finished = counter, stop, lock, finished
        self._waiting = waiting  # called while the write lock is busy

    def take(self) -> int | None:
        if self.stop.is_set():
            return None
        with self._counter.get_lock():
            number = self._counter.value
            if number >= self.total:
                return None
            self._counter.value = number + 1
        return number

    def finished(self, lines: int) -> None:
        self._finished(lines)

    @property
    def takes_turns(self) -> bool:
        return self._lock is not None

    def writing(self) -> Any:
        return self._holding(self._lock) if self._lock is not None else nullcontext()

    @contextmanager
    def _holding(self, lock: Any) -> Iterator[None]:
        # in turns, not one blocking wait: a process that died holding the lock (killed, out
        # of memory) never releases it, and the job must stop rather than hang
        while not lock.acquire(timeout=0.5):
            self._waiting()
            if self.stop.is_set():
                raise Stopped("the review stopped while this process waited to write")
        try:
            yield
        finally:
            lock.release()


class Serial(Chunks):
    """Every chunk in this process, in order: a job too small to be worth a second process."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self._next, self._done, self._progress = 0, 0, progress

    def take(self) -> int | None:
        if self._next >= self.total:
            return None
        self._next += 1
        return self._next - 1

    def finished(self, lines: int) -> None:
        self._done += lines
        if self._progress is not None:
            self._progress(self._done)


# -- inside a worker process -------------------------------------------------------------------
_worker: SharedChunks | None = None


def _start_worker(counter: Any, stop: Any, lock: Any | None, done: Any, total: int) -> None:
    global _worker
    if "torch" in sys.modules:  # a fork of a process that imported it
        # one thread: the parent's OpenMP threads are not copied by a fork, and a child that
        # runs its first parallel operation on their pool hangs; one process per core is the
        # parallelism anyway
        sys.modules["torch"].set_num_threads(1)
    _worker = SharedChunks(total, counter, stop, lock, done.put)


def _in_worker(work: Callable[[P, Chunks], R], payload: P) -> R:
    assert _worker is not None, "started without _start_worker"
    try:
        return work(payload, _worker)
    except BaseException:
        _worker.stop.set()  # the others stop at their next chunk
        raise


class _Job(Generic[P, R]):
    def __init__(self, context: Any, total: int, lock: bool, progress: Progress | None) -> None:
        self.counter = context.Value("q", 0)
        self.stop = context.Event()
        self.lock = context.Lock() if lock else None
        self.done = context.SimpleQueue()
        self.total, self.progress = total, progress
        self.lines = 0
        self.futures: list[Future[R]] = []

    def drain(self) -> None:
        """Count the lines the workers finished, and check that none of them failed."""
        while not self.done.empty():
            self.lines += self.done.get()
            if self.progress is not None:
                self.progress(self.lines)
        if any(f.done() and f.exception() is not None for f in self.futures):
            self.stop.set()

    def own(self) -> SharedChunks:
        def finished(lines: int) -> None:
            self.lines += lines
            if self.progress is not None:
                self.progress(self.lines)
            self.drain()

        return SharedChunks(self.total, self.counter, self.stop, self.lock, finished, self.drain)


def run_chunks(
    total: int,
    workers: int,
    here: Callable[[Chunks], R],
    there: Callable[[P, Chunks], R],
    payload: P,
    *,
    write_lock: bool,
    progress: Progress | None = None,
) -> list[R]:
    """Run chunks 0..total-1 in `workers` processes; each process's result, this one's first.

    `here(chunks)` runs in this process; `there(payload, chunks)` (a module-level function,
    `payload` picklable) in each of the `workers - 1` others. A forked worker must not use
    what it inherited that holds an open file or connection (a database engine): it opens
    its own. Both loop on `chunks.take()`,
    call `chunks.finished(lines)` after each chunk, and hold `chunks.writing()` around its
    transaction.
    """
    if workers <= 1 or total <= 1:
        return [here(Serial(total, progress))]
    context = multiprocessing.get_context(start_method())
    job: _Job[P, R] = _Job(context, total, write_lock, progress)
    pool = ProcessPoolExecutor(
        workers - 1,
        mp_context=context,
        initializer=_start_worker,
        initargs=(job.counter, job.stop, job.lock, job.done, total),
    )
    done = False
    try:
        with _main_not_rerun():  # the pool starts its processes on submit
            job.futures = [pool.submit(_in_worker, there, payload) for _ in range(workers - 1)]
        with _stopping_on_error(job):
            try:
                mine = here(job.own())
            except Stopped:  # a worker failed: its error is raised below
                mine = None
            pending: set[Future[R]] = set(job.futures)
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                job.drain()
                if any(f.exception() is not None for f in finished):
                    break
            job.drain()
            theirs = [f.result() for f in job.futures]  # re-raises a worker's error
            if mine is None:  # pragma: no cover - stopped, yet no worker failed
                raise Stopped("the review stopped, and no process says why")
            done = True
            return [mine, *theirs]
    finally:
        # after a failure, wait until every worker has left its chunk; after success they have
        # nothing left but to exit (a second or so with torch loaded), which they do meanwhile
        pool.shutdown(wait=not done, cancel_futures=True)


@contextmanager
def _stopping_on_error(job: _Job[Any, Any]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        job.stop.set()  # the workers finish the chunk they hold and take no other
        raise


@contextmanager
def _main_not_rerun() -> Iterator[None]:
    """While processes start, hide where `__main__` came from: spawn would re-run it in each."""
    main = sys.modules["__main__"]
    saved: dict[str, Any] = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)
