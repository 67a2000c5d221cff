"""The collector pause: off while any bulk job runs, back as it was after the last one."""

from __future__ import annotations

import gc
import threading

import pytest

from federation.collector import collector_paused


def test_the_collector_is_off_in_the_block_and_back_after_it_even_on_error() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the job failed")
    assert gc.isenabled()


def test_overlapping_pauses_keep_it_off_until_the_last_ends() -> None:
    inside, release = threading.Event(), threading.Event()

    def other_job() -> None:
        with collector_paused():
            inside.set()
            release.wait(timeout=30)

    worker = threading.Thread(target=other_job)
    with collector_paused():
        worker.start()
        assert inside.wait(timeout=30)
    assert not gc.isenabled()  # the other job is still running
    release.set()
    worker.join(timeout=30)
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
