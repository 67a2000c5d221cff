"""An outsider holding only the bank's public `ca.crt`, run as its own process: it tries the
SuperLink's Control API at an address (list nodes, register its own node key, start a run of its
own app) and prints what happened to each attempt as JSON.

    python -m tests.deploy.outsider HOST:PORT CA.crt ROGUE.pub APP_DIR [--only list]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def attempt(action: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "result": action()}
    except Exception as exc:  # the outsider only reports what the bank answered
        text = str(exc).strip().splitlines()
        return {"ok": False, "error": f"{type(exc).__name__}: {text[0] if text else ''}"[:300]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("ca", type=Path)
    parser.add_argument("rogue_pub", type=Path)
    parser.add_argument("app_dir", type=Path)
    parser.add_argument("--only", choices=["list"], default=None)
    args = parser.parse_args()
    from server.deploy.control import Control

    control = Control(args.address, args.ca)
    results = {"list_nodes": attempt(lambda: [n.__dict__ for n in control.nodes()])}
    if args.only is None:
        results["register"] = attempt(lambda: control.register(args.rogue_pub, "rogue"))
        results["start_run"] = attempt(lambda: control.start_run(args.app_dir))
    control.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
