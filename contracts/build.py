"""Rebuild `contracts/artifacts/*.json` from `contracts/src/*.sol` with npm's solc.

`python -m contracts.build` writes the artifacts; `python -m contracts.build --check` compiles
into memory and fails when the committed artifacts differ, so CI catches a source edit whose
artifacts were not rebuilt (or a compiler that drifted from the pinned version).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"


class BuildError(RuntimeError):
    """The compiler could not run or failed."""


def compile_sources() -> dict[str, str]:
    """Artifact file name -> its JSON text, as `compile.js` produces them now."""
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is not installed; the contracts are compiled with npm's solc (Node 20)")
    if not (HERE / "node_modules" / "solc").is_dir():
        raise BuildError(f"{HERE / 'node_modules' / 'solc'} missing; run `cd contracts && npm ci` first")
    proc = subprocess.run([node, str(HERE / "compile.js")], capture_output=True, text=True, cwd=HERE)
    if proc.returncode != 0:
        raise BuildError(f"solc failed:\n{proc.stderr.strip()}")
    compiled = json.loads(proc.stdout)
    return {f"{name}.json": json.dumps(art, indent=2, sort_keys=True) + "\n" for name, art in compiled.items()}


def check(expected: dict[str, str]) -> list[str]:
    """Differences between freshly compiled artifacts and the committed ones."""
    problems = []
    committed = {p.name for p in ARTIFACTS.glob("*.json")}
    for name, text in sorted(expected.items()):
        path = ARTIFACTS / name
        if not path.exists():
            problems.append(f"{path}: missing (compiled from source)")
        elif path.read_text() != text:
            problems.append(f"{path}: differs from what contracts/src compiles to")
    for name in sorted(committed - expected.keys()):
        problems.append(f"{ARTIFACTS / name}: no contract of that name in contracts/src")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with committed artifacts, write nothing")
    args = parser.parse_args(argv)
    try:
        expected = compile_sources()
    except BuildError as exc:
        print(f"contracts.build: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = check(expected)
        for line in problems:
            print(f"contracts.build --check: {line}", file=sys.stderr)
        if problems:
            print(
                "contracts.build --check: artifacts are stale; run `python -m contracts.build` and commit them",
                file=sys.stderr,
            )
            return 1
        print(f"contracts.build --check: {len(expected)} artifacts match the sources")
        return 0
    ARTIFACTS.mkdir(exist_ok=True)
    for stale in ARTIFACTS.glob("*.json"):
        if stale.name not in expected:
            stale.unlink()
    for name, text in expected.items():
        (ARTIFACTS / name).write_text(text)
    print(f"contracts.build: wrote {', '.join(sorted(expected))} to {ARTIFACTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
