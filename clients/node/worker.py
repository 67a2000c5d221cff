"""A warm ClientApp executor for one SuperNode started with `--isolation process`.

Flower 1.42 runs every message in a fresh `flwr-clientapp` process, started by a
`flower-superexec` that polls the SuperNode's Runtime API once a second; with torch to import
that costs seconds per message. This worker takes the SuperExec's place: it imports the
ClientApp's modules (and torch) ONCE, polls the Runtime API quickly for ClientApp tasks, and
for each task forks a child that runs Flower's own `run_clientapp` with the task's token. The
child starts with everything already imported, keeps the per-message isolation Flower intends
(a crash or leak stays in the child), and talks to the SuperNode through the same Runtime API.
The Flower internals it needs are in `federation.adapters.flwr.ClientAppRuntime`.

Before the child installs the run's FAB or loads anything from it, the platform's policy decides
whether it runs that ClientApp at all (`clients.node.approval`): an unapproved app is refused
with a one-line reason in this worker's log, the node's refusal log and the reply to the bank.

    python -m clients.node.worker --runtime-api-address 127.0.0.1:9094 --insecure \
        --preload clients.app --parent-pid <supernode pid>
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time

from clients.node.commands import WORKER_READY
from federation.adapters import flwr as adapter


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runtime-api-address", required=True, help="SuperNode Runtime API host:port")
    parser.add_argument("--insecure", action="store_true", help="Runtime API without TLS (loopback)")
    parser.add_argument("--root-certificates", default=None, help="CA for a TLS Runtime API")
    parser.add_argument("--preload", action="append", default=[], help="module to import before serving (repeatable)")
    parser.add_argument(
        "--warmup", action="append", default=[], help="MODULE:FUNCTION to run once before serving (repeatable)"
    )
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between task polls")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process exits")
    return parser.parse_args()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def approve(task: adapter.TaskApp) -> str | None:
    """The platform's decision on the task's ClientApp (None: approved), recorded if refused."""
    from clients.node.approval import refusal
    from clients.refusals import record_refusal

    platform = str(task.node_config.get("platform-name", "this platform"))
    reason = refusal(platform, task.node_config, task.fab_hash, task.fab_content)
    if reason is not None:
        record_refusal(task.node_config, task.run_id, "app", reason)
    return reason


def _run_child(runtime: adapter.ClientAppRuntime, token: str) -> None:
    """In the forked child: check the task's app, run it, then exit with its code."""
    code = 0
    started = time.perf_counter()
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        runtime.run_task(token, parent_pid=os.getppid(), check=approve)
    except SystemExit as exc:  # flwr_exit ends the task with sys.exit(code)
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        print(
            f"yinqi worker: task finished with code {code} in {time.perf_counter() - started:.3f} s (t={time.time():.3f})",
            flush=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    args = _parse()
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    for module in args.preload:
        importlib.import_module(module)
    for ref in args.warmup:
        module, _, func = ref.partition(":")
        getattr(importlib.import_module(module), func)()

    runtime = adapter.ClientAppRuntime(
        args.runtime_api_address, insecure=args.insecure, root_certificates=args.root_certificates
    )
    if args.parent_pid is not None:
        adapter.exit_with_parent(args.parent_pid)

    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    print(f"{WORKER_READY} {args.runtime_api_address}", flush=True)
    try:
        while True:
            _reap()
            token = runtime.acquire()
            if token:
                print(f"yinqi worker: task acquired (t={time.time():.3f})", flush=True)
                if os.fork() == 0:
                    _run_child(runtime, token)
                continue  # another task may be waiting: ask again at once
            time.sleep(args.poll)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
