"""Whole-or-absent writes: a reader never sees half a file, whatever happens to the writer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from federation import files


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_debris(tmp_path: Path) -> None:
    target = tmp_path / "features.csv"
    target.write_text("old,complete\n1,2\n")
    with pytest.raises(RuntimeError, match="disk gone"), files.atomic_open(target) as fh:
        fh.write("new,half")
        raise RuntimeError("disk gone")
    assert target.read_text() == "old,complete\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["features.csv"]


def test_a_process_killed_mid_write_leaves_no_file_under_the_name(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    script = textwrap.dedent(
        f"""
        import os, signal
        from federation import files
        with files.atomic_open({str(target)!r}) as fh:
            fh.write("merchant_id,default_probability\\nM1,0.1\\n")
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -9
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".scores.csv.partial-")


def test_writers_that_want_a_path_publish_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    files.write_with(target, lambda path: path.write_text("all of it"))
    assert target.read_text() == "all of it"
    assert files.write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
