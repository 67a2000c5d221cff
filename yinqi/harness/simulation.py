"""Flower's Simulation Runtime with an in-process backend (and Ray as an option).

`flwr.simulation.run_simulation` always starts Ray (≈10 s here) and gives every simulated node
only `partition-id`. This harness drives the same runtime pieces Flower's simulation uses
(through `federation.adapters.flwr.SimulationLink`), with two differences: ClientApps run in
worker threads of this process (`backend="ray"` keeps Flower's Ray actors), and each node gets
the real `node_config` a platform's SuperNode would have (`data-path`, `platform-name`, ...).
The ServerApp and ClientApp objects are exactly the ones a deployment runs.

Ctrl-C stops the run where it is: the ServerApp's Grid raises `RunInterrupted` at its next poll,
the ServerApp writes its report as interrupted at that round (no model), the node workers finish
the message in hand, and `simulate` raises `RunInterrupted` (carrying the run id).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from queue import Empty, Queue
from typing import Any

from federation.adapters import flwr as adapter
from server.deploy.fastgrid import FastPollGrid

log = logging.getLogger("yinqi.fl")


def simulate(
    server_app: Any,
    client_app: Any,
    run_config: dict[str, Any],
    node_configs: list[dict[str, Any]],
    *,
    backend: str = "inprocess",
    workers: int = 2,
    client_apps: dict[int, Any] | None = None,
) -> Any:
    """Run `server_app` against one simulated SuperNode per entry of `node_configs`; returns
    the ServerApp's context. An exception in the ServerApp is raised here.

    `client_apps` gives some platforms (by index into `node_configs`) a ClientApp of their own
    instead of `client_app`: a careless or hostile platform runs whatever it likes on its node.
    """
    from server.fl.errors import RunInterrupted

    link = adapter.SimulationLink(node_configs, run_config)
    interrupted = threading.Event()
    grid = InterruptibleGrid(link.grid(), interrupted)
    stop = threading.Event()
    errors: Queue[BaseException] = Queue()

    def serve() -> None:
        try:
            link.run_serverapp(server_app, grid)
        except BaseException as exc:  # handed to the caller below
            errors.put(exc)
        finally:
            stop.set()

    server_thread = threading.Thread(target=serve, name="yinqi-serverapp", daemon=True)
    server_thread.start()
    node_threads: list[threading.Thread] = []
    try:
        if backend == "ray":
            if client_apps:
                raise ValueError("per-platform ClientApps run on the in-process backend only")
            link.serve_with_ray(client_app, stop)
        else:
            apps = {node_id: (client_apps or {}).get(index, client_app) for node_id, index in link.nodes.items()}
            node_threads = _start_node_workers(link, apps, stop, workers)
            for thread in node_threads:
                thread.join()
    except KeyboardInterrupt:
        interrupted.set()  # the ServerApp stops at its next poll and writes where it was
        server_thread.join(timeout=30)
        stop.set()
        for thread in node_threads:  # a node finishes the message in hand (its ledger entry)
            thread.join(timeout=60)
        error = RunInterrupted("interrupted before the first round")
        while not errors.empty():
            found = errors.get_nowait()
            if isinstance(found, RunInterrupted):
                error = found
        error.run_id = str(link.run_id)
        raise error from None
    finally:
        stop.set()
        server_thread.join(timeout=30)
    try:
        raise errors.get_nowait()
    except Empty:
        return link.server_context


class InterruptibleGrid(FastPollGrid):
    """The in-memory Grid, polled every 5 ms, that raises `RunInterrupted` once `interrupted` is set."""

    def __init__(self, inner: Any, interrupted: threading.Event) -> None:
        super().__init__(inner, poll=0.005)
        self.interrupted = interrupted

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Any]:
        from server.fl.errors import RunInterrupted

        if self.interrupted.is_set():
            raise RunInterrupted("interrupted")
        return super().pull_messages(message_ids)


def _start_node_workers(
    link: adapter.SimulationLink, apps: dict[int, Any], stop: threading.Event, workers: int
) -> list[threading.Thread]:
    """The Simulation Runtime's node loop in worker threads, polling every 5 ms instead of
    100 ms (SecAgg+ needs four exchanges per round and the poll dominated). Each node handles
    one message at a time, on its own copy of it, as a real node would."""
    node_locks = {node_id: threading.Lock() for node_id in link.nodes}

    def handle(node_id: int, message: Any) -> None:
        try:
            context = link.context_of(node_id)
            reply = apps[node_id](message=adapter.copy_message(message), context=context)
            link.save_context(node_id, context)
        except Exception as exc:  # reported to the ServerApp as an error reply
            log.warning("node %s: ClientApp failed: %s", node_id, exc)
            reply = link.error_reply(message, exc)
        link.reply(reply)

    def work() -> None:
        while not stop.is_set():
            handled = False
            for node_id, lock in node_locks.items():
                if not lock.acquire(blocking=False):
                    continue  # another worker is serving this node
                try:
                    for message in link.messages_for(node_id):
                        handled = True
                        handle(node_id, message)
                finally:
                    lock.release()
            if not handled:
                stop.wait(0.005)

    threads = [
        threading.Thread(target=work, name=f"yinqi-node-worker-{i}", daemon=True) for i in range(max(1, workers))
    ]
    for thread in threads:
        thread.start()
    return threads
