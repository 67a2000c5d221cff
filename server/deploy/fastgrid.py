"""A ServerApp wrapper whose Grid waits for replies with a short poll instead of 3 s.

In Flower 1.42 the deployed ServerApp's `HttpGrid.send_and_receive` sleeps 3 s between pulls
of reply messages, so every message exchange costs at least 3 s at the bank even when the
replies arrive in 200 ms. `FastPollGrid` is a plain `Grid` (the public abstract API) that
delegates to the real grid and re-implements `send_and_receive` from its public
`push_messages`/`pull_messages` with a short poll. Nothing in Flower is patched: the FAB names
`server.deploy.fastgrid:app` as its ServerApp, and this app runs the real one
(run-config key `yinqi-serverapp`, default `server.fl.app:app`) on the wrapped grid.
`yinqi-reply-timeout` (seconds) bounds waits the app left unbounded, so a platform that dies
mid-round costs the round that long instead of hanging it.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp

from federation.adapters import flwr as adapter

INNER_KEY = "yinqi-serverapp"
POLL_KEY = "yinqi-grid-poll"
TIMEOUT_KEY = "yinqi-reply-timeout"
LOG_KEY = "yinqi-serverapp-log"
DROPS_KEY = "yinqi-drops-file"
DEFAULT_INNER = "server.fl.app:app"


class FastPollGrid(Grid):
    """Delegating Grid that polls for replies every `poll` seconds."""

    def __init__(
        self,
        inner: Grid,
        poll: float = 0.05,
        default_timeout: float | None = None,
        on_drop: Callable[..., None] | None = None,
    ) -> None:
        self._inner = inner
        self._on_drop = on_drop
        self._poll = poll
        self._default_timeout = default_timeout
        self.dropped: set[int] = set()  # nodes that missed a reply deadline in this run

    def set_run(self, run: Any) -> Any:
        return self._inner.set_run(run)

    @property
    def run(self) -> Any:
        return self._inner.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self._inner.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        # A node that missed a deadline is out for the rest of the run: sampling it again would
        # stall every later round (and SecAgg+ 1.42 fails when a node drops before stage 1).
        return [n for n in self._inner.get_node_ids() if n not in self.dropped]

    def get_nodes(self) -> Any:
        return self._inner.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._inner.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        if timeout is None:
            # A platform that died mid-round never replies; without a bound the bank would wait
            # for Flower's heartbeat expiry (about a minute) or forever. SecAgg+ then goes on
            # with the platforms that answered (its dropout tolerance).
            timeout = self._default_timeout
        messages = list(messages)
        ids = list(self.push_messages(messages))
        destination = {mid: m.metadata.dst_node_id for mid, m in zip(ids, messages, strict=True)}
        pending = set(ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending:
            got = list(self.pull_messages(pending))
            replies.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self._poll)
        if pending:
            late = sorted({destination[mid] for mid in pending})
            self.dropped.update(late)
            if self._on_drop is not None:
                self._on_drop(late, timeout)
            logging.getLogger("yinqi.deploy").warning(
                "node(s) %s did not answer within %.0f s: dropped for the rest of this run", late, timeout or 0
            )
        return replies

    def __getattr__(self, name: str) -> Any:  # anything a future Grid adds
        return getattr(self._inner, name)


def load_ref(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


app = ServerApp()


@app.main()
def _main(grid: Grid, context: Context) -> None:
    inner: ServerApp = load_ref(str(context.run_config.get(INNER_KEY, DEFAULT_INNER)))
    poll = float(context.run_config.get(POLL_KEY, 0.05))
    timeout = float(context.run_config.get(TIMEOUT_KEY, 0)) or None
    log_file = str(context.run_config.get(LOG_KEY, ""))
    handler = None
    if log_file:  # the ServerApp's own log (Flower streams it to the SuperLink otherwise)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)  # flwr's and yinqi's loggers propagate here
    drops_file = str(context.run_config.get(DROPS_KEY, ""))

    def on_drop(nodes: list[int], waited: float | None) -> None:
        """Note which nodes missed a deadline in which round (the deployment names them)."""
        if not drops_file:
            return
        import json

        server_round = adapter.current_round(context)
        with open(drops_file, "a", encoding="utf-8") as fh:
            for node in nodes:
                fh.write(json.dumps({"round": server_round, "node_id": node, "waited": waited}) + "\n")

    try:
        inner(FastPollGrid(grid, poll, timeout, on_drop), context)
    except Exception:
        if handler is not None:
            logging.getLogger("yinqi").exception("ServerApp failed")
        raise
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
