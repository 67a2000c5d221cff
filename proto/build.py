"""Generate the Python stubs for every `proto/*.proto` with grpcio-tools."""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent


def generate(out_dir: Path) -> list[Path]:
    sources = sorted((ROOT / "proto").glob("*.proto"))
    for source in sources:
        args = [
            "protoc",
            f"-I{ROOT}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(source.relative_to(ROOT)),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {source}")
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    args = parser.parse_args()
    if not args.check:
        generate(ROOT)
        return
    with tempfile.TemporaryDirectory() as tmp:
        sources = generate(Path(tmp))
        stale = []
        for source in sources:
            stem = source.stem
            for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
                fresh = Path(tmp) / "proto" / f"{stem}{suffix}"
                committed = ROOT / "proto" / f"{stem}{suffix}"
                if not committed.exists() or not filecmp.cmp(fresh, committed, shallow=False):
                    stale.append(committed.name)
        if stale:
            sys.exit(f"stale generated stubs: {stale}; run `python -m proto.build`")


if __name__ == "__main__":
    main()
