"""The platforms' refusals on a real loopback deployment: a SuperLink and three SuperNodes, each
with its warm worker and its own policy, as `yinqi client up` starts them.

Three runs on the same federation:

- the bank asks for `--no-dp --no-secagg`: one platform refuses for DP, one for SecAgg+, the
  third (whose policy allows it) trains alone;
- the bank asks for ε=8: the platform that allows ε≤4 refuses, the other two train with DP and
  SecAgg+;
- an outsider's FAB (its own ServerApp and a ClientApp that would copy the node config, data
  path included): every platform refuses it before any of its code is loaded.

Each refusal is one line in the platform's worker log and refusal record, and (for the bank's
runs) in the bank's ServerApp log and run report.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.deploy.conftest import assert_no_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

OUTSIDER_APP = textwrap.dedent(
    '''
    """An outsider's app: its ClientApp copies the platform's node config (data path included)."""
    import json
    from pathlib import Path

    from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp

    clientapp = ClientApp()


    @clientapp.query()
    def steal(msg: Message, context: Context) -> Message:
        Path(str(context.run_config["leak-path"])).write_text(json.dumps(dict(context.node_config)))
        loot = ConfigRecord({"data-path": str(context.node_config.get("data-path"))})
        return Message(RecordDict({"loot": loot}), reply_to=msg)


    serverapp = ServerApp()


    @serverapp.main()
    def main(grid: Grid, context: Context) -> None:
        asks = [
            Message(RecordDict({"q": ConfigRecord({"x": 1})}), dst_node_id=node, message_type=MessageType.QUERY)
            for node in grid.get_node_ids()
        ]
        replies = grid.send_and_receive(asks, timeout=60)
        seen = [
            {"error": r.error.reason} if r.has_error() else {"loot": dict(r.content.config_records["loot"])}
            for r in replies
        ]
        Path(str(context.run_config["replies-path"])).write_text(json.dumps(seen))
    '''
)


def _bank_run(fed, work: Path, config, name: str):  # type: ignore[no-untyped-def]
    from server.deploy.appdir import REAL_CLIENTAPP, write_app_dir
    from server.deploy.launch import FAST_SERVERAPP, run_config_for
    from server.fl.report import Report

    log = work / f"serverapp-{name}.log"
    run_config = run_config_for(config, "deployment (loopback)", fast=True, reply_timeout=120, log_file=log)
    app = write_app_dir(work / f"app-{name}", run_config, serverapp=FAST_SERVERAPP, clientapp=REAL_CLIENTAPP)
    status = fed.run(app, timeout=600)
    return status, Report.read(Path(config.out) / "report.json"), log.read_text()


def test_platforms_refuse_runs_below_their_policy_and_an_unapproved_clientapp(fl_files, tmp_path: Path) -> None:
    from clients.node.commands import CLIENT_PRELOAD, CLIENT_WARMUP
    from clients.policy import PrivacyPolicy
    from clients.refusals import read_refusals
    from server.deploy.appdir import write_app_dir
    from server.fl.config import FederationConfig
    from yinqi.harness.loopback import LocalFederation, prepare_ledgers
    from yinqi.harness.platforms import platform_node_configs

    files, test = fl_files
    work = tmp_path / "deploy"
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    policies = [
        PrivacyPolicy(max_epsilon=4.0, min_other_platforms=1, source="p1-policy.toml"),
        PrivacyPolicy(require_dp=False, min_other_platforms=1, source="p2-policy.toml"),
        PrivacyPolicy(require_dp=False, require_secagg=False, min_other_platforms=0, source="p3-policy.toml"),
    ]
    base = FederationConfig(clients=files, test=test, rounds=1, ledger_db=ledger, out=tmp_path / "unused")
    logs = [str(work / f"refusals-{n}.jsonl") for n in base.platform_names]
    nodes = platform_node_configs(base, policies, logs)

    with LocalFederation(work, preload=CLIENT_PRELOAD, warmup=CLIENT_WARMUP) as fed:
        fed.start_superlink()
        prepare_ledgers(nodes)
        for name, node_config in zip(base.platform_names, nodes, strict=True):
            fed.start_node(name, node_config)
        fed.wait_nodes(3)

        # 1. --no-dp --no-secagg
        plain = base.model_copy(update={"dp": False, "secagg": False, "min_clients": 1, "out": tmp_path / "plain"})
        status, report, bank_log = _bank_run(fed, work, plain, "plain")
        assert status.sub_status == "completed" and report.status == "ok"
        assert report.participants == ["platform_3"] and report.rounds[0].participants == ["platform_3"]
        assert report.refused["platform_1"] == (
            "platform platform_1's policy (p1-policy.toml) requires DP-SGD; the run asks for none (--no-dp)"
        )
        assert report.refused["platform_2"] == (
            "platform platform_2's policy (p2-policy.toml) requires SecAgg+; the run aggregates updates in the "
            "clear (--no-secagg)"
        )
        for reason in report.refused.values():
            assert reason in bank_log

        # 2. ε above one platform's cap
        dp = base.model_copy(
            update={"dp": True, "epsilon": 8.0, "secagg": True, "min_clients": 2, "out": tmp_path / "dp"}
        )
        status, report, bank_log = _bank_run(fed, work, dp, "dp")
        assert status.sub_status == "completed" and report.status == "ok"
        assert report.rounds[0].participants == ["platform_2", "platform_3"]
        assert report.refused == {
            "platform_1": "platform platform_1's policy (p1-policy.toml) allows at most ε=4 per run; the run asks for ε=8"
        }
        assert report.refused["platform_1"] in bank_log
        assert report.dp_noise == {"platform_2": "os-entropy", "platform_3": "os-entropy"}
        assert all(0 < eps <= 8.0 for eps in report.epsilon.values())

        # 3. an outsider's own app
        leak, replies = tmp_path / "leak.json", tmp_path / "replies.json"
        outsider = write_app_dir(
            work / "outsider",
            {"leak-path": str(leak), "replies-path": str(replies)},
            serverapp="outsider_app:serverapp",
            clientapp="outsider_app:clientapp",
            name="outsider",
        )
        (outsider / "outsider_app.py").write_text(OUTSIDER_APP)
        fed.run(outsider, timeout=300)
        worker_logs = {
            name: (fed.supervisor.log_dir / f"worker-{name}.log").read_text() for name in base.platform_names
        }

    assert not leak.exists()  # the outsider's ClientApp never ran
    answers = json.loads(replies.read_text())
    assert len(answers) == 3 and all("loot" not in a for a in answers)
    for answer in answers:
        assert "refuses ClientApp outsider_app:clientapp" in answer["error"]
        assert "not approved by its policy" in answer["error"]

    for name, log_path in zip(base.platform_names, logs, strict=True):
        records = read_refusals(log_path)
        app_refusals = [r for r in records if r.stage == "app"]
        assert len(app_refusals) == 1 and app_refusals[0].reason.startswith(
            f"platform {name} refuses ClientApp outsider_app:clientapp"
        )
        for record in records:  # every refusal is one line in the platform's own log too
            assert record.line() in worker_logs[name], (name, record.line())
    stages = {
        name: sorted({r.stage for r in read_refusals(p)}) for name, p in zip(base.platform_names, logs, strict=True)
    }
    assert stages == {"platform_1": ["app", "statistics"], "platform_2": ["app", "statistics"], "platform_3": ["app"]}
    assert_no_leftovers(work / "flwr-home")


def test_client_up_with_its_policy_file_refuses_and_client_status_shows_it(fl_files, tmp_path: Path) -> None:
    """The platform's own commands: `yinqi client up --policy policy.toml` prints the refusal as
    one line while it runs, and `yinqi client status` reports it afterwards."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from server.fl.config import FederationConfig
    from yinqi.harness.loopback import LocalFederation

    files, test = fl_files
    policy = tmp_path / "policy.toml"
    policy.write_text("[aggregation]\nmin_other_platforms = 0\n")  # DP and SecAgg+ required: the defaults
    node_dir = tmp_path / "node"
    console = tmp_path / "client-up.out"
    with LocalFederation(tmp_path / "bank") as fed:
        fed.start_superlink()
        with open(console, "w") as out:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "yinqi", "client", "up", "--bank", fed.address, "--data", str(files[0])),
                    *("--name", "acme", "--policy", str(policy), "--workdir", str(node_dir)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            fed.wait_nodes(1, timeout=120)
            bank = FederationConfig(clients=[files[0]], platform_names=["acme"], dp=False, rounds=1, min_clients=1)
            bank = bank.model_copy(update={"out": tmp_path / "run", "test": test})
            status, report, bank_log = _bank_run(fed, tmp_path / "bank", bank, "no-dp")
            assert status.sub_status == "failed" and report.status == "failed"
            reason = f"platform acme's policy ({policy}) requires DP-SGD; the run asks for none (--no-dp)"
            assert report.refused == {"acme": reason} and reason in bank_log
            deadline = time.monotonic() + 60
            while reason not in console.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert f"platform acme: refused run {fed.run_id} (statistics): {reason}" in console.read_text().splitlines()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode == 0 and "platform acme: stopped" in console.read_text()

    done = subprocess.run(
        [sys.executable, "-m", "yinqi", "client", "status", "--workdir", str(node_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert state["running"] is False and state["policy"]["source"] == str(policy)
    assert [(r["run_id"], r["stage"], r["reason"]) for r in state["refusals"]] == [
        (str(fed.run_id), "statistics", reason)
    ]
    assert_no_leftovers(node_dir / "flwr-home")
