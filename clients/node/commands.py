"""The command lines of a platform's Flower processes: its SuperNode and its warm worker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from federation.flower import flwr_bin

# What a platform's warm worker imports once, before any message arrives.
CLIENT_PRELOAD = (
    "clients.app",
    "clients.train",
    "clients.data",
    "clients.ledger",
    "clients.node.approval",
    "federation.model",
    "federation.privacy",
    "opacus",
)
CLIENT_WARMUP = ("clients.node.warmup:torch_dp",)


def format_node_config(config: dict[str, Any]) -> str:
    """`--node-config` syntax: space-separated key=value, strings quoted."""
    parts = []
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"{key}={'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            parts.append(f"{key}={value}")
        else:
            text = str(value).replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{key}="{text}"')
    return " ".join(parts)


def write_node_config(path: Path, config: dict[str, Any]) -> Path:
    """The node config as a TOML file (None values left out), for `--node-config PATH.toml`."""
    import tomli_w

    from federation import files

    if path.suffix != ".toml":
        raise ValueError(f"{path}: Flower reads a node config file only when it ends in .toml")
    return files.write_text(path, tomli_w.dumps({k: v for k, v in config.items() if v is not None}))


def supernode_argv(
    superlink: str,
    runtime_port: int,
    node_config: dict[str, Any],
    *,
    ca: Path | None,
    key: Path | None,
    warm: bool,
    max_wait: float | None = None,
    node_poll: float | None = None,
    config_file: Path | None = None,
) -> list[str]:
    """`flower-supernode` (or yinqi's launcher of it with a shorter idle poll) for one platform.

    With `config_file`, the node config is written there as TOML (Flower reads a `.toml` node
    config whole): any text survives, quotes included (the policy travels as JSON); on the
    command line Flower's key=value parser takes no quote inside a value.
    """
    if node_poll is None:
        argv = [flwr_bin("flower-supernode")]
    else:
        argv = [sys.executable, "-m", "clients.node.supernode", "--node-poll", str(node_poll), "--"]
    argv += ["--superlink", superlink, "--host", "127.0.0.1", "--port", str(runtime_port)]
    if ca is None:
        argv.append("--insecure")
    else:
        argv += ["--root-certificates", str(ca)]
    if key is not None:
        argv += ["--auth-supernode-private-key", str(key)]
    if warm:
        argv += ["--isolation", "process"]
    if node_config and config_file is not None:
        argv += ["--node-config", str(write_node_config(config_file, node_config))]
    elif node_config:
        argv += ["--node-config", format_node_config(node_config)]
    if max_wait is not None:
        argv += ["--max-wait-time", str(max_wait)]
    return argv


WORKER_READY = "yinqi worker ready on"


def worker_ready(log: Path) -> bool:
    """Whether the warm worker writing `log` has imported its ClientApp and warmed up."""
    return log.exists() and WORKER_READY in log.read_text(errors="replace")


def worker_argv(
    runtime_port: int, parent_pid: int, preload: tuple[str, ...], warmup: tuple[str, ...] = ()
) -> list[str]:
    """The warm ClientApp worker serving one SuperNode's Runtime API."""
    argv = [
        sys.executable,
        "-m",
        "clients.node.worker",
        "--runtime-api-address",
        f"127.0.0.1:{runtime_port}",
        "--insecure",
        "--parent-pid",
        str(parent_pid),
    ]
    for module in preload:
        argv += ["--preload", module]
    for ref in warmup:
        argv += ["--warmup", ref]
    return argv
