"""End to end, as organisations would run it: the bank and four platforms as separate
deployments, every step through the `yinqi` CLI in its own process with its own data dir.

The bank: `bank certs init` and `bank certs issue` (a certificate per platform and one for its
operator), `bank up --certs` (SuperLink on loopback behind the Fleet gate, TLS + SuperNode
authentication, the bank's gRPC services with mutual TLS and roles, periodic anchoring),
`bank register` per platform key, `bank train` (DP-SGD + SecAgg+), `audit model` once the
services' flusher anchored the model, scoring and a credit line over gRPC as the operator,
`bank down`/`bank up` with its state intact, and finally `bank down` leaving no process. Each
platform: `client keygen`, `client consent grant` in its own books, `client consent report
--features` with its platform certificate, `client up` next to its private data. The fourth
platform's lifetime ε budget is smaller than one round needs: it is refused in every round while
the other three train.

The tests in this module share one deployment (module-scoped fixtures) and run in file order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.deploy.conftest import assert_no_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

PLATFORMS = ["platform-1", "platform-2", "platform-3", "platform-4"]
WITHIN_BUDGET = PLATFORMS[:3]  # platforms whose budget allows the run
OVER_BUDGET = PLATFORMS[3]  # lifetime ε budget far below what one round needs
OVER_BUDGET_EPSILON = 0.05
EPSILON = 8.0
ROUNDS = 2
PILOT_POLICY = """
turnover_months = 3
amount_unit_fen = 100
limit_step_fen = 10000
max_limit_fen = 100000000

[[band]]
name = "P"
max_pd = 0.6
turnover_multiple_pct = 100
annual_rate_bp = 2400

[[band]]
name = "decline"
max_pd = 1.0
turnover_multiple_pct = 0
annual_rate_bp = 0
"""


# ----- running the CLI as separate organisations -----------------------------------------------
def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A private environment per organisation: its own data dir, nothing inherited that
    would point two organisations at one database or chain."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YINQI_", "FLWR_"))}
    env.update(
        {
            "YINQI_DATA_DIR": str(data_dir),
            "FLWR_TELEMETRY_ENABLED": "0",
            "COLUMNS": "240",
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def yinqi(env: dict[str, str], *args: str, ok: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`python -m yinqi ARGS` in a new process; with `ok`, fail the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", "yinqi", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if ok and done.returncode != 0:
        pytest.fail(f"yinqi {' '.join(args)} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def yinqi_json(env: dict[str, str], *args: str, timeout: float = 120.0) -> Any:
    return json.loads(yinqi(env, *args, "--json", timeout=timeout).stdout)


def poll(what: str, check, timeout: float, interval: float = 0.3):  # type: ignore[no-untyped-def]
    """Call `check()` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Platform:
    name: str
    home: Path
    env: dict[str, str]
    data: Path
    key: Path
    budget: float | None = None
    proc: subprocess.Popen | None = None
    log: Path | None = None
    signalled: bool = False

    @property
    def supernode_log(self) -> Path:
        return self.home / "client" / self.name / "logs" / "supernode.log"

    def terminate(self) -> None:
        """SIGTERM: `client up` unwinds its SuperNode and worker (`stop` waits for it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.signalled = True

    def stop(self) -> None:
        """Wait for the SIGTERM'd `client up` to end; SIGKILL its session if it does not."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if not self.signalled:
            self.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Deployment:
    root: Path
    bank_env: dict[str, str]
    bank_home: Path
    certs: Path
    port: int
    services_port: int
    platforms: list[Platform] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def services(self) -> str:
        return f"127.0.0.1:{self.services_port}"

    @property
    def ca(self) -> Path:
        return self.certs / "ca.crt"

    def party(self, name: str) -> tuple[str, ...]:
        """`--ca/--cert/--key` of a party's certificate from the bank's CA."""
        return ("--ca", str(self.ca), "--cert", str(self.certs / "clients" / f"{name}.crt"),
                "--key", str(self.certs / "clients" / f"{name}.key"))  # fmt: skip

    @property
    def flwr_home(self) -> Path:
        return self.bank_home / "bank" / "flwr-home"

    def bank(self, *args: str, ok: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return yinqi(self.bank_env, *args, ok=ok, timeout=timeout)

    def bank_json(self, *args: str, timeout: float = 120.0) -> Any:
        return yinqi_json(self.bank_env, *args, timeout=timeout)

    def bank_up(self) -> None:
        self.bank(
            "bank",
            "up",
            "--certs",
            str(self.certs),
            "--port",
            str(self.port),
            "--services-port",
            str(self.services_port),
            "--anchor-every",
            "1",
        )

    def online(self) -> dict[str, str]:
        status = self.bank_json("bank", "status")
        return {n["name"]: n["status"] for n in status["nodes"]}

    def wait_all_online(self, timeout: float = 90.0) -> None:
        def check() -> dict[str, str] | None:
            for p in self.platforms:
                if p.proc is not None and p.proc.poll() is not None:
                    pytest.fail(
                        f"`client up` of {p.name} exited {p.proc.returncode}:\n{p.log.read_text() if p.log else ''}"
                    )
            nodes = self.online()
            return nodes if all(nodes.get(p.name) == "online" for p in self.platforms) else None

        poll("every platform online in `yinqi bank status --json`", check, timeout)

    def bank_is_up(self) -> bool:
        return (self.bank_home / "bank" / "deploy.json").exists()

    def stop_platforms(self, impatient: bool = False) -> None:
        """SIGTERM every `client up` and wait for them. With `impatient`, SIGTERM each again once
        it is visibly stopping (fewer of its processes alive), as an operator pressing Ctrl-C twice."""
        from federation.processes import processes_with_env

        def children(p: Platform) -> int:
            return len(processes_with_env("FLWR_HOME", str(p.home / "client" / p.name / "flwr-home")))

        alive = {p.name: children(p) for p in self.platforms}
        for p in self.platforms:
            p.terminate()
        if impatient:
            for p in self.platforms:

                def stopping(p: Platform = p) -> bool:
                    return p.proc is not None and (p.proc.poll() is not None or children(p) < alive[p.name])

                poll(f"{p.name} to start stopping", stopping, 30, interval=0.02)
                if p.proc.poll() is None:
                    p.proc.send_signal(signal.SIGTERM)
        for p in self.platforms:
            p.stop()

    def reconnections(self) -> dict[str, int]:
        """How often each platform's SuperNode logged that it got through again after failing."""
        return {
            p.name: p.supernode_log.read_text(errors="replace").count("Connection successful after")
            for p in self.platforms
        }

    def flwr_homes(self) -> list[Path]:
        """Every process of this deployment carries one of these private FLWR_HOMEs."""
        return [self.flwr_home] + [p.home / "client" / p.name / "flwr-home" for p in self.platforms]

    def teardown(self) -> None:
        """Stop everything this module started, even after a failure: the CLI's own way first,
        then SIGKILL for whatever still carries one of this deployment's FLWR_HOMEs."""
        from federation.processes import processes_with_env

        try:
            self.stop_platforms()
        finally:
            if self.bank_is_up():
                self.bank("bank", "down", ok=False)
            for home in self.flwr_homes():
                for pid in processes_with_env("FLWR_HOME", str(home)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The bank up with TLS + node auth, four registered platforms connected with their data."""
    from federation.synth import make_feature_files

    root = tmp_path_factory.mktemp("e2e")
    files, _test = make_feature_files(root / "synth", platforms=len(PLATFORMS), merchants=40, months=4, seed=11)
    bank_home = root / "bank-org"
    # A model trained for two rounds on 40 merchants is barely better than the base rate
    # (PD ~0.3 for most), so the bank runs a pilot policy that lends up to PD 0.6.
    policy = root / "pilot_policy.toml"
    policy.write_text(PILOT_POLICY)
    bank_env = _env(bank_home, YINQI_CREDIT_POLICY=str(policy))
    dep = Deployment(root, bank_env, bank_home, root / "certs", free_port(), free_port())
    try:
        dep.bank("bank", "certs", "init", "--out", str(dep.certs))
        assert {"ca.crt", "server.pem", "server.key", "crl.pem"} <= {p.name for p in dep.certs.iterdir()}
        for name, role in [("ops", "operator"), *((p, "platform") for p in PLATFORMS)]:
            dep.bank("bank", "certs", "issue", name, "--role", role, "--certs", str(dep.certs))
        dep.bank_up()
        for name, data in zip(PLATFORMS, files, strict=True):
            home = root / f"{name}-org"
            env = _env(home)
            key = home / "node"
            home.mkdir(parents=True, exist_ok=True)
            yinqi(env, "client", "keygen", "--out", str(key))
            assert (home / "node.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
            # The public key travels to the bank; the bank registers it.
            registered = dep.bank_json("bank", "register", str(home / "node.pub"), "--name", name)
            assert registered["name"] == name and registered["node_id"]
            platform = Platform(name, home, env, data, key, OVER_BUDGET_EPSILON if name == OVER_BUDGET else None)
            dep.platforms.append(platform)
        for p in dep.platforms:
            argv = [
                sys.executable,
                "-m",
                "yinqi",
                "client",
                "up",
                "--bank",
                dep.address,
                "--ca",
                str(dep.ca),
                "--key",
                str(p.key),
                "--data",
                str(p.data),
                "--name",
                p.name,
                "--connect-timeout",
                "60",
            ]
            if p.budget is not None:
                argv += ["--epsilon-budget", str(p.budget)]
            p.log = p.home / "client-up.log"
            with open(p.log, "wb") as fh:
                p.proc = subprocess.Popen(
                    argv,
                    env=p.env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        dep.wait_all_online()
        yield dep
    finally:
        dep.teardown()


@pytest.fixture(scope="module")
def trained(deployment: Deployment) -> dict[str, Any]:
    """One `yinqi bank train` run (DP + SecAgg+) on the four connected platforms (all online
    already); three of them must contribute to every round."""
    out = deployment.root / "models" / "run1"
    summary = deployment.bank_json(
        "bank",
        "train",
        "--rounds",
        str(ROUNDS),
        "--epsilon",
        str(EPSILON),
        "--min-platforms",
        str(len(WITHIN_BUDGET)),
        "--wait",
        "30",
        "--out",
        str(out),
        timeout=300,
    )
    report = json.loads((out / "report.json").read_text())
    return {"summary": summary, "report": report, "out": out}


# ----- the tests, in the order a bank would go ---------------------------------------------------
def test_bank_up_runs_tls_and_node_auth(deployment: Deployment) -> None:
    status = deployment.bank_json("bank", "status")
    assert status["superlink"]["running"] and status["superlink"]["tls"] and status["superlink"]["node_auth"]
    assert status["services"]["running"] and status["services"]["address"] == deployment.services
    assert sorted(n["name"] for n in status["nodes"]) == sorted(PLATFORMS)


def test_training_with_dp_and_secagg_registers_v1_and_refuses_the_platform_over_budget(trained) -> None:  # type: ignore[no-untyped-def]
    summary, report = trained["summary"], trained["report"]
    assert report["status"] == "ok", report.get("error")
    assert report["settings"]["dp"] is True and report["settings"]["secagg"] is True
    assert len(report["rounds"]) == ROUNDS
    for r in report["rounds"]:
        assert r["aggregated"], r
        assert sorted(r["participants"]) == sorted(WITHIN_BUDGET), r
        assert list(r["refused"]) == [OVER_BUDGET], r
        assert f"budget epsilon={OVER_BUDGET_EPSILON:g} would be exceeded" in r["refused"][OVER_BUDGET]
    for name in WITHIN_BUDGET:
        assert 0 < report["epsilon"][name] <= EPSILON, report["epsilon"]
    assert not report["epsilon"].get(OVER_BUDGET), "the refused platform spent no ε"
    assert summary["version"] == "v1"
    assert summary["dropped"] == []


def test_model_is_registered_with_its_provenance(deployment: Deployment, trained) -> None:  # type: ignore[no-untyped-def]
    [v1] = deployment.bank_json("bank", "models")
    assert v1["version"] == "v1"
    # The refused platform joined (preprocessing agreement, evaluation) but never trained: it is
    # not a participant and spent (and is charged) no ε.
    assert sorted(v1["participants"]) == sorted(WITHIN_BUDGET)
    assert v1["rounds"] == ROUNDS
    assert sorted(v1["epsilon"]) == sorted(WITHIN_BUDGET)
    assert all(0 < v1["epsilon"][name] <= EPSILON for name in WITHIN_BUDGET)
    assert v1["sha256"] and v1["status"] in ("candidate", "promoted")


def test_the_services_anchor_the_model_and_tampering_is_detected(deployment: Deployment, trained) -> None:  # type: ignore[no-untyped-def]
    # `bank up` runs the services with a periodic flusher: the model's hash reaches the chain
    # without anyone running `yinqi anchor flush`.
    verified = poll(
        "the services' flusher to anchor v1",
        lambda: (
            json.loads(out.stdout)
            if (out := deployment.bank("audit", "model", "v1", "--json", ok=False)).returncode == 0
            else None
        ),
        60,
        interval=1.0,
    )
    [v1] = deployment.bank_json("bank", "models")
    assert verified["files_match"] is True and verified["sha256"] == v1["sha256"]
    assert verified["kind"] == "model" and verified["ref"] == "v1"

    # Tamper with the stored weights (a real change, still a loadable model), then put them back.
    stored = deployment.bank_home / "models" / "v1" / "model.pt"
    original = stored.read_bytes()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, torch; p = sys.argv[1]; s = torch.load(p, weights_only=True); "
            "k = next(iter(s)); s[k] = s[k] + 0.01; torch.save(s, p)",
            str(stored),
        ],
        check=True,
        env=deployment.bank_env,
        timeout=120,
    )
    try:
        tampered = deployment.bank("audit", "model", "v1", ok=False)
        assert tampered.returncode != 0
        lines = [ln for ln in tampered.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: model v1:"), tampered.stderr
        assert "the model changed after registration" in lines[0]
    finally:
        stored.write_bytes(original)
    assert deployment.bank_json("audit", "model", "v1")["files_match"] is True


def _available(info: dict[str, Any]) -> int:
    return int(info["available_fen"])


def test_credit_line_through_the_banks_services_and_survives_a_restart(deployment: Deployment, trained) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    p1 = deployment.platforms[0]
    merchants = sorted(pd.read_csv(p1.data, usecols=["merchant_id"])["merchant_id"].unique())
    consenting, refusing = merchants[:6], merchants[-1]
    # Platform 1 records consent in its own books and reports it, with the consenting merchants'
    # features, over mutual TLS with its platform certificate.
    granted = yinqi_json(p1.env, "client", "consent", "grant", *consenting, "--note", "e2e test")
    assert sorted(r["merchant_id"] for r in granted) == consenting
    reported = yinqi_json(
        p1.env, "client", "consent", "report", "--bank", deployment.services, *deployment.party(p1.name),
        "--features", str(p1.data),
    )  # fmt: skip
    assert {k: reported[k] for k in ("received", "stored")} == {"received": len(consenting), "stored": len(consenting)}
    assert reported["features"]["merchants"] == len(consenting)

    remote = ("--bank", deployment.services, *deployment.party("ops"))
    # Scored with v1 over gRPC as the bank's operator; take the first consenting merchant the policy lends to.
    chosen, scored = None, None
    for merchant in consenting:
        scored = deployment.bank_json("bank", "score", "--model", "v1", "--merchant", merchant, *remote)
        assert scored["model_version"] == "v1" and 0.0 <= scored["default_probability"] <= 1.0
        if scored["limit_fen"] >= 200:
            chosen = merchant
            break
    assert chosen is not None, f"no consenting merchant got a limit (last: {scored})"
    assert scored["band"] == "P" and scored["limit_fen"] % 10000 == 0

    refused = deployment.bank("bank", "score", "--model", "v1", "--merchant", refusing, *remote, ok=False)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: merchant '{refusing}': no features reported by its platform "
        "(the platform sends them with `yinqi client consent report --features FILE`)"
    )
    as_platform = deployment.bank(
        "bank", "score", "--merchant", chosen, "--bank", deployment.services, *deployment.party(p1.name), ok=False
    )
    assert as_platform.returncode == 2
    assert (
        as_platform.stderr.strip()
        == f"error: {p1.name} (platform) may not call ScoringService/Score; it is open to operator"
    )

    line = deployment.bank_json("bank", "credit", "open", "--model", "v1", "--merchant", chosen, *remote)
    account, limit = line["account_id"], line["limit_fen"]
    assert limit == scored["limit_fen"] and line["principal_fen"] == 0 and _available(line) == limit
    draw = limit // 2
    drawn = deployment.bank_json("bank", "credit", "draw", account, str(draw), *remote)
    assert drawn["principal_fen"] == draw and _available(drawn) == limit - draw
    repaid = deployment.bank_json("bank", "credit", "repay", account, str(draw // 2), *remote)
    assert repaid["principal_fen"] == draw - draw // 2  # no day accrued yet: all of it is principal

    # Over the limit: one line, exit 2, nothing booked.
    entries_before = deployment.bank_json("bank", "credit", "show", account, "--entries")["entries"]
    too_much = _available(repaid) + 1
    over = deployment.bank("bank", "credit", "draw", account, str(too_much), *remote, ok=False)
    assert over.returncode == 2
    assert over.stderr.count("\n") == 1 and over.stderr.startswith(
        f"error: credit account '{account}': draw of {too_much} fen exceeds the available"
    ), over.stderr
    after = deployment.bank_json("bank", "credit", "show", account, "--entries")
    assert after["entries"] == entries_before
    assert {k: after[k] for k in repaid} == repaid

    # Restart the bank: registry and credit lines come back; the platforms reconnect by themselves.
    [v1_before] = deployment.bank_json("bank", "models")
    reconnected_before = deployment.reconnections()
    stopped = deployment.bank("bank", "down").stdout
    assert "SuperLink" in stopped and "bank services" in stopped
    assert_no_leftovers(deployment.flwr_home)
    deployment.bank_up()
    assert deployment.bank_json("bank", "models") == [v1_before]
    calls = deployment.bank_json("bank", "calls", "--limit", "0")
    assert {(c["caller"], c["method"], c["status"]) for c in calls} >= {
        ("ops", "CreditService/Open", "OK"),
        ("ops", "CreditService/Draw", "OK"),
        ("ops", "CreditService/Draw", "FAILED_PRECONDITION"),
        (p1.name, "PlatformService/ReportFeatures", "OK"),
        (p1.name, "ScoringService/Score", "PERMISSION_DENIED"),
    }
    assert deployment.bank_json("bank", "credit", "show", account, *remote) == {k: after[k] for k in repaid}
    # `bank status` may still say "online" from the old SuperLink's records for a few seconds,
    # so wait for each SuperNode to say it got through to the new one, then for the status.
    poll(
        "every platform's SuperNode to reconnect to the restarted bank",
        lambda: all(n > reconnected_before[name] for name, n in deployment.reconnections().items()),
        90,
    )
    deployment.wait_all_online()
    # ... and the restarted services still refuse an over-limit draw, with the same state after.
    again = deployment.bank("bank", "credit", "draw", account, str(too_much), *remote, ok=False)
    assert again.returncode == 2 and "exceeds the available" in again.stderr
    assert deployment.bank_json("bank", "credit", "show", account, "--entries")["entries"] == entries_before


def test_bank_down_and_client_stop_leave_no_process_behind(deployment: Deployment) -> None:
    # A second SIGTERM while a platform is stopping must not orphan its SuperNode.
    deployment.stop_platforms(impatient=True)
    for p in deployment.platforms:
        assert p.proc is not None and p.proc.returncode == 0, p.log.read_text() if p.log else ""
        assert "stopped" in p.log.read_text()
        assert_no_leftovers(p.home / "client" / p.name / "flwr-home")
    stopped = deployment.bank("bank", "down").stdout
    assert "SuperLink" in stopped
    assert not deployment.bank_is_up()
    assert_no_leftovers(deployment.flwr_home)
    status = deployment.bank("bank", "status", ok=False)
    assert status.returncode != 0
