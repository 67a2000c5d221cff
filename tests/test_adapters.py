"""Pins of the dependency behaviour yinqi's adapters rely on (`federation/adapters/`).

Each test states one fact about the installed flwr 1.42 that `federation.adapters.flwr` (or the
node-config file the SuperNode reads) depends on. An upgrade that changes the fact fails here,
with the adapter function named, before a deployment slows down or a check is skipped.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

from federation.adapters import flwr as adapter


@pytest.fixture()
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are created inside a task (Flower reads its identity); pretend to be one."""
    from flwr.supercore.task_identity import TaskIdentity

    for name in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


def test_the_installed_flwr_is_the_version_the_adapter_was_checked_against() -> None:
    assert adapter.flwr_version().startswith(adapter.CHECKED_FLWR)


def test_cap_supernode_idle_poll__the_supernode_sleeps_through_its_module_time() -> None:
    from flwr.supernode import start_client_internal as sci

    assert sci.time is time
    assert "time" in sci.start_client_internal.__code__.co_names  # `time.sleep(3)` looked up at call time


def test_simulation_link__register_nodes_returns_node_id_to_partition() -> None:
    from flwr.server.superlink.fleet.vce.vce_api import _register_nodes
    from flwr.server.superlink.linkstate import LinkStateFactory
    from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.superlink.federation import NoOpFederationManager

    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    mapping = _register_nodes(num_nodes=3, state_factory=factory)
    assert sorted(mapping.values()) == [0, 1, 2] and all(isinstance(n, int) for n in mapping)
    state = factory.state()
    assert isinstance(state.run_ids, dict) and isinstance(state.task_store, dict)  # written by SimulationLink


def test_simulation_link__a_message_keeps_its_id_in_metadata_dict(task_identity: None) -> None:
    from flwr.app import ConfigRecord, Message, RecordDict

    message = Message(RecordDict({"x": ConfigRecord({"a": 1})}), dst_node_id=1, message_type="query")
    assert "_message_id" in message.metadata.__dict__


def test_client_app_runtime__run_clientapp_accepts_the_keywords_we_pass() -> None:
    from flwr.supernode.runtime.run_clientapp import run_clientapp

    parameters = inspect.signature(run_clientapp).parameters
    for name in (
        "runtime_api_address",
        "token",
        "insecure",
        "certificates",
        "parent_pid",
        "runtime_dependency_install",
    ):
        assert name in parameters, name


def test_client_app_runtime__the_check_runs_between_pulling_the_task_and_loading_the_app() -> None:
    """`run_task(check=...)` replaces the module's `pull_task_input`: `run_clientapp` must look it
    up at call time, before it installs the FAB (`install_from_fab`) or loads the app."""
    from flwr.supernode.runtime import run_clientapp as module

    source = inspect.getsource(module.run_clientapp)
    assert "pull_task_input" in module.run_clientapp.__code__.co_names
    assert (
        source.index("pull_task_input(client)")
        < source.index("install_from_fab(")
        < source.index("load_client_app_fn(")
    )
    assert list(inspect.signature(module.pull_task_input).parameters) == ["client"]
    assert list(inspect.signature(module.push_message).parameters) == ["client", "message", "context"]
    assert list(inspect.signature(module.push_task_output).parameters) == ["client", "context", "sub_status", "details"]


def test_client_app_runtime__a_refused_task_is_an_invalid_fab_error_and_a_failed_task() -> None:
    from flwr.common.constant import ErrorCode, SubStatus

    assert (ErrorCode.INVALID_FAB, SubStatus.FAILED) == (7, "failed")


def test_control_client__the_http_clients_are_built_from_a_server_address() -> None:
    from flwr.supercore.control import ControlHttpClient
    from flwr.supercore.runtime import RuntimeHttpClient

    assert callable(ControlHttpClient.from_server_address)
    assert callable(RuntimeHttpClient.from_server_address)


def test_workflow_and_secagg_record_keys() -> None:
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
    from flwr.server.workflow.constant import Key as WorkflowKey

    assert adapter.secagg_configs_key() == RECORD_KEY_CONFIGS == "secaggplus_configs"
    assert Key.SOURCE_LIST == "srcs"  # secagg_neighbours counts these
    assert adapter.main_params_record() == MAIN_PARAMS_RECORD
    assert MAIN_CONFIGS_RECORD and WorkflowKey.CURRENT_ROUND


def test_secagg_neighbours_counts_the_distinct_sources_of_key_shares(task_identity: None) -> None:
    from flwr.app import ConfigRecord, Message, RecordDict

    configs = ConfigRecord({"srcs": [4, 9, 4], "ctxts": [b"a", b"b", b"c"]})
    secagg = Message(RecordDict({"secaggplus_configs": configs}), dst_node_id=1, message_type="train")
    plain = Message(RecordDict({"config": ConfigRecord({"round": 1})}), dst_node_id=1, message_type="train")
    assert (adapter.secagg_neighbours(secagg), adapter.secagg_neighbours(plain)) == (2, None)


def test_the_supernode_reads_a_node_config_file_ending_in_toml(tmp_path: Path) -> None:
    """`clients.node.commands.write_node_config`: quotes inside values survive only this way."""
    from flwr.common.config import parse_config_args

    from clients.node.commands import write_node_config

    config = {"data-path": "/d/a \"b\" 'c'.csv", "yinqi-policy": '{"max_epsilon": 4.0}', "epsilon-budget": 3.5}
    path = write_node_config(tmp_path / "node-config.toml", config)
    assert parse_config_args([str(path)]) == config
    with pytest.raises(ValueError, match=r"ends in \.toml"):
        write_node_config(tmp_path / "node-config.txt", config)
