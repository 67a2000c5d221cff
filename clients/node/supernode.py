"""`flower-supernode` with a shorter idle poll (opt-in; the stock SuperNode otherwise).

Flower 1.42's SuperNode sleeps a hard-coded 3 s whenever it asks the SuperLink for a message
and gets none, and 0.5 s while it waits for its ClientApp's reply. SecAgg+ needs four message
exchanges per round plus evaluation, and the slowest node always just missed the next stage,
so every exchange costs >= 3 s: >= 15 s a round however fast the ClientApp is.

There is no flag or environment variable for that interval, so this launcher runs Flower's own
`flower-supernode` entry point with its waits capped at `--node-poll` seconds
(`federation.adapters.flwr.cap_supernode_idle_poll`, guarded: on another Flower version the
stock SuperNode runs unchanged, with a warning). Over a real network a longer poll (or the
stock 3 s) keeps the SuperLink's load low; on loopback 0.1-0.2 s costs nothing.

    python -m clients.node.supernode --node-poll 0.1 -- --superlink 127.0.0.1:9092 ...
"""

from __future__ import annotations

import sys

from federation.adapters import flwr as adapter


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["--node-poll"]:
        adapter.cap_supernode_idle_poll(float(argv[1]))
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    adapter.run_supernode(argv)


if __name__ == "__main__":
    main()
