"""Loading libsodium's Ristretto255 leaves no temporary library file behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_no_temporary_library_is_left_in_the_temp_dir(tmp_path: Path) -> None:
    code = "from federation.psi import group; group.random_scalar(); group.hash_to_group(['M1'], b's')"
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=120
    )
    assert list(tmp_path.iterdir()) == []
