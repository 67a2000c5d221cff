"""Flower's Simulation Runtime with an in-process backend (and Ray as an option).

`flwr.simulation.run_simulation` always starts Ray (≈10 s here) and gives every simulated node
only `partition-id`. This module drives the same runtime pieces Flower's simulation uses (an
in-memory LinkState, the `InMemoryGrid` the ServerApp talks to, `vce.run_api`'s message
workers), with two differences: ClientApps run in worker threads of this process (a `Backend`
that calls the ClientApp directly; `backend="ray"` keeps Flower's Ray actors), and each node gets
the real `node_config` a platform's SuperNode would have (`data-path`, `platform-name`, ...).
The ServerApp and ClientApp objects are exactly the ones a deployment runs.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from queue import Empty, Queue
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.client_app import ClientAppException
from flwr.server.superlink.fleet.vce.backend import Backend


class InProcessBackend(Backend):
    """Runs ClientApps in the Simulation Runtime's worker threads, in this process."""

    def __init__(self, workers: int = 2) -> None:
        super().__init__({})
        self._workers = max(1, workers)
        self.app_fn: Callable[[], ClientApp] | None = None

    def build(self, app_fn: Callable[[], ClientApp]) -> None:
        self.app_fn = app_fn

    @property
    def num_workers(self) -> int:
        return self._workers

    def is_worker_idle(self) -> bool:
        return True

    def terminate(self) -> None:
        self.app_fn = None

    def process_message(self, message: Message, context: Context) -> tuple[Message, Context]:
        if self.app_fn is None:
            raise ValueError("backend not built")
        # A real node gets its own (deserialised) copy of each message; SecAgg+'s setup stage
        # sends one shared RecordDict to every node and the client mod mutates it.
        message = copy.deepcopy(message)
        try:
            return self.app_fn()(message=message, context=context), context
        except Exception as exc:  # reported to the ServerApp as an error reply, like Ray's actors
            raise ClientAppException(str(exc)) from exc


def simulate(
    server_app: Any,
    client_app: ClientApp,
    run_config: dict[str, Any],
    node_configs: list[dict[str, Any]],
    *,
    backend: str = "inprocess",
    workers: int = 2,
) -> Context:
    """Run `server_app` against one simulated SuperNode per entry of `node_configs`."""
    from flwr.common.constant import NUM_PARTITIONS_KEY, PARTITION_ID_KEY, RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
    from flwr.compat.client.run_info_store import DeprecatedRunInfoStore, RunInfo
    from flwr.proto.task_pb2 import Task  # pylint: disable=no-name-in-module
    from flwr.server.run_serverapp import run as run_serverapp
    from flwr.server.superlink.fleet.vce.metrics import VceMetrics
    from flwr.server.superlink.fleet.vce.vce_api import _register_nodes, run_api
    from flwr.server.superlink.linkstate import LinkStateFactory
    from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
    from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
    from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity
    from flwr.superlink.federation import NoOpFederationManager
    from flwr.superlink.grid import InMemoryGrid

    state_factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    run = Run.create_empty(run_id=generate_rand_int_from_bytes(RUN_ID_NUM_BYTES))
    run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
    run.federation_id = NOOP_FEDERATION_ID
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run.run_id, SUPERLINK_NODE_ID
    state = state_factory.state()
    state.run_ids[run.run_id] = RunRecord(run=run)  # type: ignore[attr-defined]
    state.task_store[run.primary_task_id] = Task(task_id=run.primary_task_id, run_id=run.run_id)  # type: ignore[attr-defined]

    nodes = _register_nodes(num_nodes=len(node_configs), state_factory=state_factory)
    stores: dict[int, DeprecatedRunInfoStore] = {}
    for node_id, partition in nodes.items():
        node_config = {PARTITION_ID_KEY: partition, NUM_PARTITIONS_KEY: len(node_configs), **node_configs[partition]}
        store = DeprecatedRunInfoStore(node_id=node_id, node_config=node_config)
        context = Context(run_id=run.run_id, node_id=node_id, node_config=node_config, state=RecordDict(), run_config=dict(run_config))
        store.run_infos[run.run_id] = RunInfo(context=context, initial_run_config=dict(run_config))
        stores[node_id] = store

    grid = InMemoryGrid(state_factory=state_factory, pull_interval=0.005)
    grid.set_run(run)
    server_context = Context(run_id=run.run_id, node_id=0, node_config={}, state=RecordDict(), run_config=dict(run_config))
    f_stop = threading.Event()
    errors: Queue[BaseException] = Queue()

    def serve() -> None:
        try:
            run_serverapp(grid=grid, context=server_context, server_app_dir="", loaded_server_app=server_app)
        except BaseException as exc:  # handed to the caller below
            errors.put(exc)
        finally:
            f_stop.set()

    def make_backend() -> Backend:
        if backend == "ray":
            from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend

            return RayBackend({"init_args": {"logging_level": "ERROR", "log_to_driver": False}, "client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "actor": {"tensorflow": 0}})
        return InProcessBackend(workers)

    server_thread = threading.Thread(target=serve, name="yinqi-serverapp", daemon=True)
    server_thread.start()
    try:
        if backend == "ray":
            run_api(lambda: client_app, make_backend, nodes, state_factory, stores, f_stop, VceMetrics())
        else:
            _serve_nodes(client_app, nodes, state_factory, stores, f_stop, run.run_id, workers)
    finally:
        f_stop.set()
        server_thread.join(timeout=30)
    try:
        raise errors.get_nowait()
    except Empty:
        return server_context


def _serve_nodes(client_app, nodes, state_factory, stores, f_stop, run_id, workers):  # type: ignore[no-untyped-def]
    """The Simulation Runtime's node loop (as in `vce.run_api`), polling the LinkState every
    5 ms instead of 100 ms: SecAgg+ needs four exchanges per round and the poll dominated."""
    from uuid import uuid4

    from flwr.app.error import Error
    from flwr.common.constant import ErrorCode

    state = state_factory.state()
    backend = InProcessBackend(workers)
    backend.build(lambda: client_app)
    node_locks = {node_id: threading.Lock() for node_id in nodes}

    def work() -> None:
        while not f_stop.is_set():
            handled = False
            for node_id, lock in node_locks.items():
                if not lock.acquire(blocking=False):
                    continue  # another worker is serving this node: one message at a time per node
                try:
                    for message in state.get_message_ins(node_id=node_id, limit=1):
                        handled = True
                        store = stores[node_id]
                        try:
                            reply, context = backend.process_message(message, store.retrieve_context(run_id=run_id))
                            store.update_context(run_id, context=context)
                        except Exception as exc:  # reported to the ServerApp as an error reply
                            logging.getLogger("yinqi.fl").warning("node %s: ClientApp failed: %s", node_id, exc)
                            reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=message)
                        reply.metadata.__dict__["_message_id"] = str(uuid4())
                        state.store_message_res(reply)
                finally:
                    lock.release()
            if not handled:
                f_stop.wait(0.005)

    threads = [threading.Thread(target=work, name=f"yinqi-node-worker-{i}", daemon=True) for i in range(max(1, workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
