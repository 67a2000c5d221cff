"""`flower-supernode` with a shorter idle poll (opt-in; the stock SuperNode otherwise).

Flower 1.42's SuperNode sleeps a hard-coded 3 s whenever it asks the SuperLink for a message
and gets none, and 0.5 s while it waits for its ClientApp's reply. SecAgg+ needs four message
exchanges per round plus evaluation, and the slowest node always just missed the next stage
(it asks again immediately after pushing its reply, before the bank has sent the next stage),
so every exchange costs >= 3 s: >= 15 s a round however fast the ClientApp is.

There is no flag or environment variable for that interval, so this launcher runs Flower's own
`flower-supernode` entry point with the module's `time` replaced by a proxy whose `sleep`
caps waits at `--node-poll` seconds. The replacement is guarded: it is applied only to the
Flower version it was checked against and only if the module still has that shape; otherwise
the stock SuperNode runs unchanged (with a warning), so an upgrade slows rounds down but never
breaks them. Over a real network a longer poll (or the stock 3 s) keeps the SuperLink's load
low; on loopback 0.1-0.2 s costs nothing.

    python -m server.deploy.supernode --node-poll 0.1 -- --superlink 127.0.0.1:9092 ...
"""

from __future__ import annotations

import sys
import time as _time
import types

CHECKED_FLWR = ("1.42.",)


class _CappedTime(types.ModuleType):
    """The `time` module with `sleep` capped at `cap` seconds."""

    def __init__(self, cap: float) -> None:
        super().__init__("time")
        self._cap = cap

    def sleep(self, seconds: float) -> None:
        _time.sleep(min(seconds, self._cap))

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(_time, name)


def apply_poll(cap: float) -> bool:
    """Shorten the SuperNode's waits; False (and nothing changed) when not safely possible."""
    import flwr
    from flwr.supernode import start_client_internal as sci

    version = getattr(flwr, "__version__", "")
    if not version.startswith(CHECKED_FLWR) or getattr(sci, "time", None) is not _time:
        print(f"yinqi: flwr {version}: node poll left at Flower's default", file=sys.stderr)
        return False
    sci.time = _CappedTime(cap)  # type: ignore[attr-defined]
    return True


def main() -> None:
    argv = sys.argv[1:]
    cap = None
    if argv[:1] == ["--node-poll"]:
        cap = float(argv[1])
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if cap is not None:
        apply_poll(cap)
    from flwr.supernode.cli import flower_supernode

    sys.argv = ["flower-supernode", *argv]
    flower_supernode()


if __name__ == "__main__":
    main()
