"""Every place yinqi relies on Flower internals (non-public modules), in one thin adapter.

Checked against flwr 1.42.0 (`CHECKED_FLWR`); `tests/test_adapters.py` pins the behaviour each
function relies on, so an upgrade fails there first. Why each one exists:

- **Simulation runtime with real node configs and no Ray** (`SimulationLink`): the public
  `flwr.simulation.run_simulation` always starts Ray (~10 s here) and gives every node only
  `partition-id`; yinqi's platforms need their `data-path`, ledger and budget. We drive the same
  pieces Flower's simulation uses: an in-memory LinkState, `InMemoryGrid`, node registration.
- **A warm ClientApp worker** (`ClientAppRuntime`): in place of Flower's SuperExec, which starts
  a new Python (and imports torch) for every message; the worker acquires tasks through the
  SuperNode's Runtime API and runs Flower's own `run_clientapp` in a forked child. Before the
  task's app is installed or loaded, the platform's check sees the run's FAB and node config
  and may refuse it (`run_task(check=...)`): Flower's own `--trusted-entities` verifies FABs
  signed through Flower's platform, which a closed federation cannot reach.
- **A shorter SuperNode idle poll** (`cap_supernode_idle_poll`): the SuperNode sleeps a
  hard-coded 3 s between empty polls; there is no flag for it.
- **The Control API from Python** (`ControlClient`): the `flwr` CLI costs ~1 s of start-up per
  call; the Control API has no public Python client.
- **Workflow and SecAgg+ record keys** (`current_round`, `secagg_configs_key`,
  `secagg_neighbours`): the legacy workflows keep the round number in a config record whose
  name is a module constant; a SecAgg+ message lists the nodes whose key shares it carries.
"""

from __future__ import annotations

import copy
import hashlib
import sys
import time as _time
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

CHECKED_FLWR = "1.42."


def flwr_version() -> str:
    import flwr

    return str(getattr(flwr, "__version__", ""))


# -- workflow and SecAgg+ record keys -------------------------------------------------------------
def _workflow_constants() -> tuple[str, str, str]:
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

    return MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key.CURRENT_ROUND


def current_round(context: Any) -> int:
    """The round the legacy workflow is in (0 before the first)."""
    configs, _params, key = _workflow_constants()
    record = context.state.config_records.get(configs)
    return int(record[key]) if record is not None and key in record else 0


def main_params_record() -> str:
    """Name of the ArrayRecord in which the legacy workflow keeps the global model."""
    return _workflow_constants()[1]


def plain_fit_workflow() -> Any:
    """The legacy workflow's plain (no SecAgg+) fit stage, as `DefaultWorkflow` uses it."""
    from flwr.server.workflow.default_workflows import default_fit_workflow

    return default_fit_workflow


def secagg_configs_key() -> str:
    """Config-record key present in a message only during SecAgg+ stages."""
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    return str(RECORD_KEY_CONFIGS)


def secagg_neighbours(message: Any) -> int | None:
    """Under SecAgg+'s masking stage, how many other nodes' encrypted key shares reached this
    node (each completed a key exchange with it this round); None outside SecAgg+."""
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

    configs = message.content.config_records.get(RECORD_KEY_CONFIGS)
    if configs is None or Key.SOURCE_LIST not in configs:
        return None
    return len(set(configs[Key.SOURCE_LIST]))


# -- simulation runtime ----------------------------------------------------------------------------
def client_app_exception(message: str) -> Exception:
    """The exception a simulation backend raises for a failed ClientApp (reported as an error reply)."""
    from flwr.clientapp.client_app import ClientAppException

    return ClientAppException(message)


def backend_base() -> type:
    """Flower's simulation `Backend` base class (a backend runs ClientApps for the runtime)."""
    from flwr.server.superlink.fleet.vce.backend import Backend

    return Backend


def ray_backend() -> Any:
    """Flower's Ray backend, as its simulation runtime configures it."""
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend

    return RayBackend(
        {
            "init_args": {"logging_level": "ERROR", "log_to_driver": False},
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "actor": {"tensorflow": 0},
        }
    )


class SimulationLink:
    """An in-memory SuperLink for one run: the LinkState, the ServerApp's Grid, the nodes.

    Parameters
    ----------
    node_configs : one dict per simulated SuperNode (what its `--node-config` would hold).
    run_config : the run's configuration (`context.run_config` on both sides).
    """

    def __init__(self, node_configs: list[dict[str, Any]], run_config: dict[str, Any]) -> None:
        from flwr.app import Context, RecordDict
        from flwr.common.constant import (
            NUM_PARTITIONS_KEY,
            PARTITION_ID_KEY,
            RUN_ID_NUM_BYTES,
            SUPERLINK_NODE_ID,
            TASK_ID_NUM_BYTES,
        )
        from flwr.compat.client.run_info_store import DeprecatedRunInfoStore, RunInfo
        from flwr.proto.task_pb2 import Task  # pylint: disable=no-name-in-module
        from flwr.server.superlink.fleet.vce.vce_api import _register_nodes
        from flwr.server.superlink.linkstate import LinkStateFactory
        from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
        from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
        from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
        from flwr.supercore.object_store import ObjectStoreFactory
        from flwr.supercore.run import Run
        from flwr.supercore.task_identity import TaskIdentity
        from flwr.superlink.federation import NoOpFederationManager

        self.state_factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
        run = Run.create_empty(run_id=generate_rand_int_from_bytes(RUN_ID_NUM_BYTES))
        run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
        run.federation_id = NOOP_FEDERATION_ID
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run.run_id, SUPERLINK_NODE_ID
        self.state = self.state_factory.state()
        # The in-memory LinkState has no public way to add a run without a FAB.
        self.state.run_ids[run.run_id] = RunRecord(run=run)  # type: ignore[attr-defined]
        self.state.task_store[run.primary_task_id] = Task(task_id=run.primary_task_id, run_id=run.run_id)  # type: ignore[attr-defined]
        self.run = run
        self.run_id: int = run.run_id
        self.nodes: dict[int, int] = _register_nodes(num_nodes=len(node_configs), state_factory=self.state_factory)
        self.stores: dict[int, Any] = {}
        for node_id, partition in self.nodes.items():
            node_config = {
                PARTITION_ID_KEY: partition,
                NUM_PARTITIONS_KEY: len(node_configs),
                **node_configs[partition],
            }
            store = DeprecatedRunInfoStore(node_id=node_id, node_config=node_config)
            context = Context(
                run_id=run.run_id,
                node_id=node_id,
                node_config=node_config,
                state=RecordDict(),
                run_config=dict(run_config),
            )
            store.run_infos[run.run_id] = RunInfo(context=context, initial_run_config=dict(run_config))
            self.stores[node_id] = store
        self.server_context = Context(
            run_id=run.run_id, node_id=0, node_config={}, state=RecordDict(), run_config=dict(run_config)
        )

    def grid(self, pull_interval: float = 0.005) -> Any:
        """The Grid the ServerApp talks to (replies polled every `pull_interval` s)."""
        from flwr.superlink.grid import InMemoryGrid

        grid = InMemoryGrid(state_factory=self.state_factory, pull_interval=pull_interval)
        grid.set_run(self.run)
        return grid

    def run_serverapp(self, server_app: Any, grid: Any) -> None:
        """Run `server_app` on `grid` to completion, as Flower's simulation does."""
        from flwr.server.run_serverapp import run as run_serverapp

        run_serverapp(grid=grid, context=self.server_context, server_app_dir="", loaded_server_app=server_app)

    def messages_for(self, node_id: int, limit: int = 1) -> list[Any]:
        """Messages waiting for `node_id` (each handed out once)."""
        return list(self.state.get_message_ins(node_id=node_id, limit=limit))

    def context_of(self, node_id: int) -> Any:
        return self.stores[node_id].retrieve_context(run_id=self.run_id)

    def save_context(self, node_id: int, context: Any) -> None:
        self.stores[node_id].update_context(self.run_id, context=context)

    def reply(self, reply: Any) -> None:
        """Store a node's reply for the ServerApp (with a fresh message id, as a real node sets)."""
        from uuid import uuid4

        reply.metadata.__dict__["_message_id"] = str(uuid4())  # Message has no public setter
        self.state.store_message_res(reply)

    @staticmethod
    def error_reply(message: Any, exc: Exception) -> Any:
        """The error reply a node sends when its ClientApp raised."""
        from flwr.app import Message
        from flwr.app.error import Error
        from flwr.common.constant import ErrorCode

        return Message(
            Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=message
        )

    def serve_with_ray(self, client_app: Any, stop: Any) -> None:
        """Serve every node with Flower's Ray backend until `stop` is set."""
        from flwr.server.superlink.fleet.vce.metrics import VceMetrics
        from flwr.server.superlink.fleet.vce.vce_api import run_api

        run_api(lambda: client_app, ray_backend, self.nodes, self.state_factory, self.stores, stop, VceMetrics())


def copy_message(message: Any) -> Any:
    """A node's own copy of a message (SecAgg+'s setup shares one RecordDict between nodes)."""
    return copy.deepcopy(message)


# -- the warm ClientApp worker --------------------------------------------------------------------
class ClientAppRuntime:
    """The SuperNode's Runtime API as a SuperExec sees it: acquire ClientApp tasks, run one."""

    def __init__(self, address: str, *, insecure: bool, root_certificates: str | None) -> None:
        from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
        from flwr.supercore.retry import make_simple_http_retry_invoker
        from flwr.supercore.runtime import RuntimeHttpClient
        from flwr.supercore.tls import validate_and_resolve_root_certificates

        self.address = address
        self.insecure = insecure
        self.certificates = validate_and_resolve_root_certificates(root_certificates, insecure)
        self._client = RuntimeHttpClient.from_server_address(
            server_address=address,
            insecure=insecure,
            root_certificates=self.certificates,
            interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
            retry_invoker=make_simple_http_retry_invoker(),
        )

    def acquire(self) -> str | None:
        """The token of a waiting ClientApp task, or None."""
        from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
        from flwr.supercore.constant import TaskType

        res = self._client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
        return str(res.token) if res.HasField("task") and res.token else None

    def run_task(self, token: str, parent_pid: int, check: Callable[[TaskApp], str | None] | None = None) -> None:
        """Run one task exactly as `flwr-clientapp` would (ends with SystemExit(code)).

        `check(task_app)` runs after the task's inputs are pulled and before the FAB is installed
        or any of its code is loaded; a reason (str) refuses the task: the node replies with an
        `INVALID_FAB` error carrying the reason and the task ends as failed.
        """
        from flwr.supernode.runtime import run_clientapp as module

        if check is not None:  # this forked child runs one task: the replacement dies with it
            cast(Any, module).pull_task_input = _checked_pull(module.pull_task_input, check)
        module.run_clientapp(
            runtime_api_address=self.address,
            token=token,
            insecure=self.insecure,
            certificates=self.certificates,
            parent_pid=parent_pid,
            runtime_dependency_install=False,
        )

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class TaskApp:
    """What a node is asked to run, as the platform's check sees it (nothing loaded yet)."""

    run_id: int
    fab_hash: str
    fab_content: bytes
    node_config: dict[str, Any]


class TaskRefused(SystemExit):
    """The platform's check refused the task (its reply and final status are already sent)."""


TASK_REFUSED_CODE = 78  # EX_CONFIG: refused by the node's configuration (its policy)


def _checked_pull(pull: Callable[[Any], Any], check: Callable[[TaskApp], str | None]) -> Callable[[Any], Any]:
    """`run_clientapp`'s pull of the task inputs, followed by the platform's check."""
    from flwr.app import Message
    from flwr.app.error import Error
    from flwr.common.constant import ErrorCode, SubStatus
    from flwr.supernode.runtime import run_clientapp as module

    def pull_then_check(client: Any) -> Any:
        message, context, run, fab = pull(client)
        reason = check(TaskApp(int(run.run_id), str(fab.hash_str), bytes(fab.content), dict(context.node_config)))
        if reason is None:
            return message, context, run, fab
        module.push_message(
            client, Message(Error(code=ErrorCode.INVALID_FAB, reason=reason), reply_to=message), context
        )
        module.push_task_output(client=client, context=context, sub_status=SubStatus.FAILED, details=reason)
        raise TaskRefused(TASK_REFUSED_CODE)

    return pull_then_check


def exit_with_parent(parent_pid: int) -> None:
    """Exit this process when `parent_pid` exits (Flower's own parent monitor)."""
    from flwr.supercore.app_utils import start_parent_process_monitor

    start_parent_process_monitor(parent_pid)


# -- the SuperNode's idle poll --------------------------------------------------------------------
class _CappedTime(types.ModuleType):
    """The `time` module with `sleep` capped at `cap` seconds."""

    def __init__(self, cap: float) -> None:
        super().__init__("time")
        self._cap = cap

    def sleep(self, seconds: float) -> None:
        _time.sleep(min(seconds, self._cap))

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


def cap_supernode_idle_poll(cap: float) -> bool:
    """Shorten the SuperNode's waits to `cap` s; False (nothing changed) when not safely possible.

    Applied only to the Flower version it was checked against and only if the module still
    has that shape, so an upgrade slows rounds down but never breaks them.
    """
    from flwr.supernode import start_client_internal as sci

    if not flwr_version().startswith(CHECKED_FLWR) or getattr(sci, "time", None) is not _time:
        print(f"yinqi: flwr {flwr_version()}: node poll left at Flower's default", file=sys.stderr)
        return False
    sci.time = _CappedTime(cap)
    return True


def run_supernode(argv: list[str]) -> None:
    """Run Flower's `flower-supernode` entry point with `argv`."""
    from flwr.supernode.cli import flower_supernode

    sys.argv = ["flower-supernode", *argv]
    flower_supernode()


# -- the Control API ------------------------------------------------------------------------------
def public_key_to_bytes(key: Any) -> bytes:
    """An EC public key in the byte form the SuperLink registers."""
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes as convert

    return bytes(convert(key))


class ControlClient:
    """The SuperLink's Control API at `address` (TLS when `root_certificates` is given)."""

    def __init__(self, address: str, root_certificates: bytes | None) -> None:
        from flwr.supercore.control import ControlHttpClient
        from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor

        self._client = ControlHttpClient.from_server_address(
            server_address=address,
            insecure=root_certificates is None,
            root_certificates=root_certificates,
            interceptors=[RuntimeVersionHttpInterceptor(component_name="flwr CLI")],
        )

    def close(self) -> None:
        self._client.close()

    def list_nodes(self) -> Iterable[tuple[int, str, str]]:
        """(node id, name, status) of every node the SuperLink knows."""
        from flwr.proto.control_pb2 import ListNodesRequest  # pylint: disable=E0611

        res = self._client.ListNodes(ListNodesRequest())
        return [(int(n.node_id), str(n.name), str(n.status)) for n in res.nodes_info]

    def register_node(self, public_key: bytes, name: str) -> int:
        from flwr.proto.control_pb2 import RegisterNodeRequest  # pylint: disable=E0611

        return int(self._client.RegisterNode(RegisterNodeRequest(public_key=public_key, name=name)).node_id)

    def unregister_node(self, node_id: int) -> None:
        from flwr.proto.control_pb2 import UnregisterNodeRequest  # pylint: disable=E0611

        self._client.UnregisterNode(UnregisterNodeRequest(node_id=node_id))

    def start_run(self, app_dir: Path, overrides: dict[str, Any]) -> int | None:
        """Build the app directory into a FAB and start a run of it; the run id (None if refused)."""
        from flwr.cli.build import build_fab_from_disk
        from flwr.common.serde import fab_to_proto, user_config_to_proto
        from flwr.proto.control_pb2 import StartRunRequest  # pylint: disable=E0611
        from flwr.supercore.fab import Fab

        with warnings.catch_warnings():  # pathspec's deprecation noise inside Flower's builder
            warnings.simplefilter("ignore", DeprecationWarning)
            fab_bytes = build_fab_from_disk(Path(app_dir))
        fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
        res = self._client.StartRun(
            StartRunRequest(fab=fab_to_proto(fab), override_config=user_config_to_proto(overrides))
        )
        return int(res.run_id) if res.HasField("run_id") else None

    def run_status(self, run_id: int) -> tuple[str, str, str]:
        """(status, sub status, details) of a run."""
        from flwr.proto.control_pb2 import ListRunsRequest  # pylint: disable=E0611

        run = self._client.ListRuns(ListRunsRequest(run_id=run_id)).run_dict[run_id]
        return str(run.status.status), str(run.status.sub_status), str(run.status.details)

    def stop_run(self, run_id: int) -> None:
        from flwr.proto.control_pb2 import StopRunRequest  # pylint: disable=E0611

        self._client.StopRun(StopRunRequest(run_id=run_id))
