"""`ast.parse` in two threads at once (python/cpython#106905): parses take turns."""

from __future__ import annotations

import ast
import gc
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from federation import interpreter

# long enough that the collector runs during the parse at a threshold of 50 allocations
LONG_SOURCE = "[" + ",".join(f"({i}, 'a', {{'k': {i}}})" for i in range(3000)) + "]"


def in_parse() -> bool:
    """Whether the interpreter's own `ast.parse` is on this thread's stack (a collection can
    also start in the guard, before it takes its turn)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is interpreter.unguarded_parse.__code__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def parse_while_another_thread_parses(parse: Callable[..., Any]) -> tuple[bool, list[str]]:
    """Parse a long text in this thread; when the collector runs half-way through, let another
    thread parse (one call deeper in its stack) before going on, as a thread switch would.
    Returns whether the other parse finished half-way through this one, and each parse's
    result (this one's first); a parse that raised is named with its error."""
    events: dict[str, str] = {}
    meanwhile = [False]
    other_may_parse, other_done = threading.Event(), threading.Event()
    armed = [True]

    def halfway(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start" and armed[0] and threading.current_thread() is threading.main_thread() and in_parse():
            armed[0] = False
            other_may_parse.set()
            # the other thread's parse finishes now if nothing holds it back; waiting longer
            # proves nothing more, since with the guard it cannot start before this parse ends
            meanwhile[0] = other_done.wait(timeout=0.5)

    def other() -> None:
        other_may_parse.wait()

        def deeper(levels: int) -> Any:
            return deeper(levels - 1) if levels else parse("x + 1")

        try:
            deeper(20)
            events["other"] = "parsed"
        except SystemError as exc:
            events["other"] = f"failed: {exc}"
        other_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    threshold = gc.get_threshold()
    gc.callbacks.append(halfway)
    gc.set_threshold(50)
    try:
        parse(LONG_SOURCE)
        events["this"] = "parsed"
    except SystemError as exc:
        events["this"] = f"failed: {exc}"
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(halfway)
        other_may_parse.set()
    thread.join(timeout=30)
    assert not armed[0], "the collector never ran during the parse: the scenario did not happen"
    return meanwhile[0], [events.get("this", "?"), events.get("other", "?")]


def test_parses_in_two_threads_take_turns_and_both_succeed() -> None:
    if not interpreter.parses_take_turns():
        pytest.skip("this interpreter is not affected: ast.parse is left as it is")
    assert parse_while_another_thread_parses(ast.parse) == (False, ["parsed", "parsed"])
    assert ast.literal_eval("{'descr': '<f8', 'shape': (3,)}") == {"descr": "<f8", "shape": (3,)}


def test_the_interpreter_without_the_guard_fails_as_reported() -> None:
    """What the guard is for: on an affected interpreter the same scenario raises."""
    if not interpreter.AFFECTED:
        pytest.skip("this interpreter is not affected")
    meanwhile, (this, other) = parse_while_another_thread_parses(interpreter.unguarded_parse)
    assert meanwhile and other == "parsed"
    assert this.startswith("failed: AST constructor recursion depth mismatch")


def test_the_guard_is_installed_once() -> None:
    if not interpreter.AFFECTED:
        assert interpreter.parses_take_turns() is False
        assert ast.parse is interpreter.unguarded_parse
        return
    installed = ast.parse
    assert interpreter.parses_take_turns() is True
    assert ast.parse is installed is not interpreter.unguarded_parse
