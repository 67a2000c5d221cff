"""A platform's own privacy policy: the bank's run is held to it, and below it the node refuses.

Issue 10's reproduction: a platform started with `--epsilon-budget 5` obeyed `bank train --no-dp
--no-secagg` and sent raw, unmasked updates. Here each kind of request below a platform's policy
is refused by that platform (weight 0 and a one-line reason, in its log, its refusal record and
the bank's report) while the other platforms train.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from clients.policy import PolicyError, PrivacyPolicy, load_policy, round_refusal, run_refusal
from clients.runconfig import ClientRunConfig
from tests.fl.conftest import fast_config


def test_without_a_file_the_safe_defaults_hold() -> None:
    policy = load_policy(None)
    assert (policy.require_dp, policy.require_secagg, policy.allow_seeded_noise) == (True, True, False)
    assert (policy.max_epsilon, policy.max_delta, policy.lifetime_epsilon, policy.min_other_platforms) == (
        10.0,
        1e-5,
        30.0,
        2,
    )
    assert policy.components == ("clients.app:app",) and policy.fab_hashes == ()


def test_a_policy_file_overrides_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[dp]\nmax_epsilon = 4\nlifetime_epsilon = 12.5\n[aggregation]\nmin_other_platforms = 1\n")
    policy = load_policy(path)
    assert (policy.max_epsilon, policy.lifetime_epsilon, policy.min_other_platforms) == (4.0, 12.5, 1)
    assert policy.require_dp and policy.require_secagg  # what it leaves out stays safe
    assert PrivacyPolicy.from_node_config(policy.to_node_config()) == policy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dp]\nmax_epsilon = -1\n", "max_epsilon must be a finite number > 0, got -1.0"),
        ("[dp]\nmax_epsilon = inf\n", "max_epsilon must be a finite number > 0, got inf"),
        ("[dp]\nrequired = 'no'\n", "require_dp must be true or false"),
        ("[dp]\nepsilon = 3\n", "[dp] has unknown key 'epsilon'"),
        ("[privacy]\n", "unknown table [privacy]"),
        ("[aggregation]\nmin_other_platforms = 1.5\n", "min_other_platforms must be a whole number >= 0"),
        ("[apps]\ncomponents = ['clients.app']\n", "component 'clients.app' must look like MODULE:OBJECT"),
        ("[apps]\nfab_hashes = ['abc']\n", "fab hash 'abc' must be 64 lower-case hex digits"),
        ("[dp\n", "not valid TOML"),
    ],
)
def test_a_bad_policy_is_refused_at_start_with_the_file_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        (ClientRunConfig(dp=False), "requires DP-SGD; the run asks for none (--no-dp)"),
        (ClientRunConfig(epsilon=12.0), "allows at most ε=10 per run; the run asks for ε=12"),
        (ClientRunConfig(delta=1e-3), "allows at most δ=1e-05; the run asks for δ=0.001"),
        (ClientRunConfig(reproducible_noise=True), "draws DP noise from OS entropy only"),
        (ClientRunConfig(secagg=False), "requires SecAgg+; the run aggregates updates in the clear (--no-secagg)"),
        (ClientRunConfig(), None),
    ],
)
def test_a_run_below_the_safe_defaults_is_refused_with_the_reason(run: ClientRunConfig, reason: str | None) -> None:
    got = run_refusal(PrivacyPolicy(), "acme", run)
    assert (
        got is None
        if reason is None
        else (got.startswith("platform acme's policy (<safe defaults>) ") and reason in got)
    )


def test_a_round_is_held_to_secagg_and_the_fewest_other_platforms() -> None:
    policy = PrivacyPolicy(min_other_platforms=2)
    assert "this round's update was asked for without SecAgg+" in str(
        round_refusal(policy, "acme", secagg_neighbours=None, claimed_platforms=5)
    )
    assert "needs at least 2 other platform(s) in a round; this round has 1" in str(
        round_refusal(policy, "acme", secagg_neighbours=1, claimed_platforms=9)  # the key exchange counts, not claims
    )
    assert round_refusal(policy, "acme", secagg_neighbours=2, claimed_platforms=None) is None
    plain = PrivacyPolicy(require_secagg=False, min_other_platforms=2)
    assert round_refusal(plain, "acme", secagg_neighbours=None, claimed_platforms=3) is None


STRICT = PrivacyPolicy(source="strict.toml")


@pytest.mark.parametrize(
    ("run", "policy", "reason"),
    [
        ({"dp": False, "secagg": False}, STRICT, "requires DP-SGD; the run asks for none (--no-dp)"),
        (
            {"dp": True, "secagg": False},
            PrivacyPolicy(allow_seeded_noise=True, source="strict.toml"),
            "requires SecAgg+; the run aggregates updates in the clear (--no-secagg)",
        ),
        (
            {"dp": True, "epsilon": 8.0},
            PrivacyPolicy(max_epsilon=2.0, allow_seeded_noise=True, source="strict.toml"),
            "allows at most ε=2 per run; the run asks for ε=8",
        ),
        ({"dp": True}, STRICT, "draws DP noise from OS entropy only; the run asks for seeded, reproducible noise"),
        (
            {"dp": True},
            PrivacyPolicy(min_other_platforms=3, allow_seeded_noise=True, source="strict.toml"),
            "needs at least 3 other platform(s) in a round; this round has 2",
        ),
    ],
    ids=["no-dp", "no-secagg", "epsilon-above-cap", "seeded-noise", "too-few-others"],
)
def test_a_platform_refuses_a_run_below_its_policy_and_the_others_train(
    fl_files, tmp_path, caplog, run, policy, reason
) -> None:  # type: ignore[no-untyped-def]
    from yinqi.harness.federated import run_federation
    from yinqi.harness.platforms import policy_for_run

    files, test = fl_files
    cfg = fast_config(files, test, tmp_path / "m", rounds=1, **run)
    policies = [policy_for_run(cfg), policy_for_run(cfg), policy]
    with caplog.at_level(logging.WARNING):
        report = run_federation(cfg, policies=policies)

    assert report.status == "ok" and report.rounds[0].aggregated
    assert report.rounds[0].participants == ["platform_1", "platform_2"]
    refused = report.refused.get("platform_3") or report.rounds[0].refused["platform_3"]
    assert refused.startswith("platform platform_3's policy (strict.toml) ") and reason in refused
    assert "\n" not in refused
    platform_lines = [r.getMessage() for r in caplog.records if r.name == "yinqi.platform"]
    bank_lines = [r.getMessage() for r in caplog.records if r.name == "yinqi.fl"]
    assert any(reason in line for line in platform_lines), platform_lines
    assert any("platform_3" in line and reason in line for line in bank_lines), bank_lines
    assert "platform_3" not in report.epsilon  # it never trained


def test_refusals_are_kept_in_the_platforms_refusal_log(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from clients.app import app as client_app
    from clients.refusals import read_refusals
    from server.fl.app import app as server_app
    from yinqi.harness.platforms import platform_node_configs, policy_for_run
    from yinqi.harness.simulation import simulate

    files, test = fl_files
    cfg = fast_config(files, test, tmp_path / "m", rounds=1, dp=False, secagg=False)
    logs = [str(tmp_path / f"refusals-{i}.jsonl") for i in range(3)]
    nodes = platform_node_configs(cfg, [policy_for_run(cfg), policy_for_run(cfg), STRICT], logs)
    simulate(server_app, client_app, {**cfg.to_run_config()}, nodes)

    assert [read_refusals(log) for log in logs[:2]] == [[], []]
    (refusal,) = read_refusals(logs[2])
    assert refusal.stage == "statistics" and "requires DP-SGD" in refusal.reason
    assert json.loads(Path(logs[2]).read_text())["run_id"] == refusal.run_id


@pytest.mark.parametrize(("key", "value"), [("epsilon", "inf"), ("rounds", "many"), ("delta", float("nan"))])
def test_a_run_config_value_a_platform_cannot_read_is_a_refusal_not_a_crash(key: str, value: object) -> None:
    from federation.errors import ConfigError

    with pytest.raises(ConfigError, match=f"the bank's run config has {key}="):
        ClientRunConfig.from_run_config({key: value})
