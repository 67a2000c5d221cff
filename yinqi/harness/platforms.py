"""The platforms' side of a one-process harness: each simulated SuperNode's node config.

On a real deployment each platform sets its own node config (`yinqi client up`, with its policy
file or the safe defaults). A harness plays every platform itself, so it writes their node
configs: the bank's per-platform settings (`FederationConfig.node_configs()`) plus a privacy
policy. Given none, the simulated platforms allow exactly what the run asks (the caller plays
both sides and asked for it); `yinqi train --platform-policy FILE` gives them a real one.
"""

from __future__ import annotations

import json
from typing import Any

from clients.node.approval import IDENTITIES_KEY, pinned_identities
from clients.policy import PrivacyPolicy
from clients.refusals import LOG_KEY
from server.fl.config import FederationConfig

HARNESS_POLICY = "<harness: the run's own settings>"


def policy_for_run(config: FederationConfig) -> PrivacyPolicy:
    """A policy that allows exactly what `config` asks (no lifetime cap beyond `epsilon_budget`)."""
    defaults = PrivacyPolicy()
    return PrivacyPolicy(
        require_dp=config.dp,
        max_epsilon=config.epsilon if config.dp else defaults.max_epsilon,
        max_delta=config.delta if config.dp else defaults.max_delta,
        lifetime_epsilon=None,
        allow_seeded_noise=config.reproducible_noise,
        allow_row_level=config.unit_column == "row",
        require_secagg=config.secagg,
        min_other_platforms=max(0, config.min_clients - 1),
        source=HARNESS_POLICY,
    )


def platform_node_configs(
    config: FederationConfig,
    policies: PrivacyPolicy | list[PrivacyPolicy] | None = None,
    refusal_logs: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One node config per platform: the bank's settings, the platform's policy (one for all,
    one each, or None: `policy_for_run`), its pinned ClientApp identities and refusal log."""
    nodes = config.node_configs()
    if policies is None or isinstance(policies, PrivacyPolicy):
        chosen = [policies or policy_for_run(config)] * len(nodes)
    else:
        chosen = list(policies)
    if len(chosen) != len(nodes):
        raise ValueError(f"{len(chosen)} policies for {len(nodes)} platforms")
    for i, (node, policy) in enumerate(zip(nodes, chosen, strict=True)):
        node.update(policy.to_node_config())
        node[IDENTITIES_KEY] = json.dumps(pinned_identities(policy), sort_keys=True)
        if refusal_logs is not None:
            node[LOG_KEY] = refusal_logs[i]
    return nodes
