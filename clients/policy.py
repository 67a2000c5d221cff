"""A platform's own privacy policy: what it lets a bank's run do with its data.

The bank chooses a run's settings; the platform decides whether to take part. The policy is the
platform's file (`yinqi client up --policy policy.toml`; without one, the safe defaults below)
and reaches the platform's own ClientApp and warm worker through the SuperNode's `node_config`,
which only the platform sets. A run below the policy is refused by the node with a one-line
reason (weight 0, as a budget refusal), and a ClientApp the policy does not approve is refused
before any of its code is loaded (`clients.node.approval`).

    [dp]
    required = true              # refuse runs without DP-SGD
    max_epsilon = 10.0           # the largest ε one run may ask of this platform
    max_delta = 1e-5
    lifetime_epsilon = 30.0      # ε over all runs (the privacy ledger adds them up)
    allow_seeded_noise = false   # refuse runs that ask for reproducible (seeded) DP noise
    allow_row_level = false      # refuse runs whose ε protects a row, not a whole merchant

    [aggregation]
    secagg_required = true       # refuse rounds whose updates are not SecAgg+-masked
    min_other_platforms = 2      # fewest other platforms whose SecAgg+ keys reached this node

    [apps]
    components = ["clients.app:app"]   # ClientApps from the yinqi installed here (FAB with no code)
    fab_hashes = []                    # or whole FABs by sha256, code included, after review
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from clients.runconfig import ClientRunConfig
from federation.errors import ConfigError

DEFAULT_COMPONENT = "clients.app:app"
NODE_CONFIG_KEY = "yinqi-policy"  # the policy as JSON in the SuperNode's node_config

_SECTIONS: dict[str, dict[str, str]] = {
    # TOML section -> {key in the section: field of PrivacyPolicy}
    "dp": {
        "required": "require_dp",
        "max_epsilon": "max_epsilon",
        "max_delta": "max_delta",
        "lifetime_epsilon": "lifetime_epsilon",
        "allow_seeded_noise": "allow_seeded_noise",
        "allow_row_level": "allow_row_level",
    },
    "aggregation": {"secagg_required": "require_secagg", "min_other_platforms": "min_other_platforms"},
    "apps": {"components": "components", "fab_hashes": "fab_hashes"},
}


class PolicyError(ConfigError):
    """A policy file that cannot be used (the platform's own mistake, found at start-up)."""


@dataclass(frozen=True)
class PrivacyPolicy:
    """What a platform allows; the defaults are the safe ones a node runs without a file."""

    require_dp: bool = True
    max_epsilon: float = 10.0
    max_delta: float = 1e-5
    lifetime_epsilon: float | None = 30.0
    allow_seeded_noise: bool = False
    allow_row_level: bool = False
    require_secagg: bool = True
    min_other_platforms: int = 2
    components: tuple[str, ...] = (DEFAULT_COMPONENT,)
    fab_hashes: tuple[str, ...] = ()
    source: str = field(default="<safe defaults>", compare=False)

    def __post_init__(self) -> None:
        where = self.source
        for name in ("max_epsilon", "max_delta"):
            value = getattr(self, name)
            if not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            ):
                raise PolicyError(f"{where}: {name} must be a finite number > 0, got {value!r}")
        if self.max_delta >= 1:
            raise PolicyError(f"{where}: max_delta must be below 1, got {self.max_delta!r}")
        lifetime = self.lifetime_epsilon
        if lifetime is not None and not (
            isinstance(lifetime, (int, float))
            and not isinstance(lifetime, bool)
            and math.isfinite(lifetime)
            and lifetime > 0
        ):
            raise PolicyError(f"{where}: lifetime_epsilon must be a finite number > 0, got {lifetime!r}")
        if (
            not isinstance(self.min_other_platforms, int)
            or isinstance(self.min_other_platforms, bool)
            or self.min_other_platforms < 0
        ):
            raise PolicyError(
                f"{where}: min_other_platforms must be a whole number >= 0, got {self.min_other_platforms!r}"
            )
        for name in ("require_dp", "allow_seeded_noise", "allow_row_level", "require_secagg"):
            if not isinstance(getattr(self, name), bool):
                raise PolicyError(f"{where}: {name} must be true or false, got {getattr(self, name)!r}")
        for ref in self.components:
            module, _, attribute = str(ref).partition(":")
            if not module or not attribute:
                raise PolicyError(f"{where}: component {ref!r} must look like MODULE:OBJECT (e.g. {DEFAULT_COMPONENT})")
        for digest in self.fab_hashes:
            if len(str(digest)) != 64 or any(c not in "0123456789abcdef" for c in str(digest)):
                raise PolicyError(f"{where}: fab hash {digest!r} must be 64 lower-case hex digits (sha256)")

    # -- node config: how the policy reaches the ClientApp and the worker -------------------
    def to_node_config(self) -> dict[str, str]:
        data = {k: v for k, v in asdict(self).items() if k != "source"}
        data["components"], data["fab_hashes"] = list(self.components), list(self.fab_hashes)
        data["source"] = self.source
        return {NODE_CONFIG_KEY: json.dumps(data, sort_keys=True)}

    @classmethod
    def from_node_config(cls, node_config: dict[str, Any]) -> PrivacyPolicy:
        """The node's policy; a node started without one runs the safe defaults."""
        raw = node_config.get(NODE_CONFIG_KEY)
        if raw in (None, ""):
            return cls()
        try:
            data = json.loads(str(raw))
            data["components"] = tuple(data.get("components", (DEFAULT_COMPONENT,)))
            data["fab_hashes"] = tuple(data.get("fab_hashes", ()))
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise PolicyError(f"node config {NODE_CONFIG_KEY} is not a policy ({exc})") from None

    def with_lifetime(self, epsilon: float | None) -> PrivacyPolicy:
        """The same policy with another lifetime ε (the `--epsilon-budget` flag)."""
        if epsilon is None:
            return self
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return PrivacyPolicy(**{**data, "lifetime_epsilon": epsilon})

    def describe(self) -> list[str]:
        """The policy as lines a platform operator reads."""
        lifetime = "none" if self.lifetime_epsilon is None else f"{self.lifetime_epsilon:g}"
        return [
            f"DP-SGD {'required' if self.require_dp else 'optional'}; ε per run ≤ {self.max_epsilon:g}, "
            f"δ ≤ {self.max_delta:g}; lifetime ε ≤ {lifetime}; "
            f"{'seeded noise allowed' if self.allow_seeded_noise else 'OS-entropy noise only'}; "
            f"{'row-level DP allowed' if self.allow_row_level else 'ε per merchant (no row-level DP)'}",
            f"SecAgg+ {'required' if self.require_secagg else 'optional'}; "
            f"at least {self.min_other_platforms} other platform(s) per round",
            f"approved ClientApps: {', '.join(self.components) or '-'}"
            + (f"; FABs {', '.join(h[:12] for h in self.fab_hashes)}" if self.fab_hashes else ""),
        ]


def load_policy(path: str | Path | None) -> PrivacyPolicy:
    """The policy in `path` (safe defaults for what it leaves out); None gives the defaults."""
    if path is None:
        return PrivacyPolicy()
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise PolicyError(f"{where}: policy file not found")
    try:
        doc = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError(f"{where}: not UTF-8 text; save the policy as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{where}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {"source": where}
    for section, table in doc.items():
        if section not in _SECTIONS:
            raise PolicyError(f"{where}: unknown table [{section}]; expected {', '.join(f'[{s}]' for s in _SECTIONS)}")
        if not isinstance(table, dict):
            raise PolicyError(f"{where}: [{section}] must be a table")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise PolicyError(
                    f"{where}: [{section}] has unknown key '{key}'; expected {', '.join(_SECTIONS[section])}"
                )
            name = _SECTIONS[section][key]
            if name in ("components", "fab_hashes"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise PolicyError(f"{where}: [{section}] {key} must be a list of strings")
                value = tuple(value)
            elif (
                name in ("max_epsilon", "max_delta", "lifetime_epsilon")
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                value = float(value)
            values[name] = value
    return PrivacyPolicy(**values)


def run_refusal(policy: PrivacyPolicy, platform: str, run: ClientRunConfig) -> str | None:
    """Why `platform` refuses the bank's run as configured (one line), or None."""
    prefix = f"platform {platform}'s policy ({policy.source})"
    if policy.require_dp and not run.dp:
        return f"{prefix} requires DP-SGD; the run asks for none (--no-dp)"
    if run.dp and run.epsilon > policy.max_epsilon:
        return f"{prefix} allows at most ε={policy.max_epsilon:g} per run; the run asks for ε={run.epsilon:g}"
    if run.dp and run.delta > policy.max_delta:
        return f"{prefix} allows at most δ={policy.max_delta:g}; the run asks for δ={run.delta:g}"
    if run.dp and run.unit_column == "row" and not policy.allow_row_level:
        return (
            f"{prefix} protects whole merchants; the run asks for row-level DP (--unit-column row), "
            "whose ε protects one row only"
        )
    if run.dp and run.reproducible_noise and not policy.allow_seeded_noise:
        return f"{prefix} draws DP noise from OS entropy only; the run asks for seeded, reproducible noise"
    if policy.require_secagg and not run.secagg:
        return f"{prefix} requires SecAgg+; the run aggregates updates in the clear (--no-secagg)"
    return None


def round_refusal(
    policy: PrivacyPolicy, platform: str, *, secagg_neighbours: int | None, claimed_platforms: int | None
) -> str | None:
    """Why `platform` refuses to send this round's update (one line), or None.

    Under SecAgg+ the other platforms counted are those whose key shares reached this node this
    round (each completed a key exchange with it); in a plain round, the number the bank says it
    sampled (there the bank sees single updates anyway).
    """
    prefix = f"platform {platform}'s policy ({policy.source})"
    if policy.require_secagg and secagg_neighbours is None:
        return f"{prefix} requires SecAgg+; this round's update was asked for without SecAgg+ masking"
    others = secagg_neighbours if secagg_neighbours is not None else max(0, (claimed_platforms or 1) - 1)
    if others < policy.min_other_platforms:
        return (
            f"{prefix} needs at least {policy.min_other_platforms} other platform(s) in a round; "
            f"this round has {others}"
        )
    return None
