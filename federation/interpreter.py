"""A work-around for a defect of the Python interpreter itself: `ast.parse` in two threads.

CPython 3.11.0–3.11.7 and 3.12.0–3.12.1 count the AST constructor's recursion depth in state
shared by every thread (python/cpython#106905, fixed in 3.11.8 and 3.12.2). When a parse lets
go of the interpreter lock half-way (a garbage collection that runs Python code) and another
thread parses meanwhile, the first one fails with ``SystemError: AST constructor recursion
depth mismatch``. Libraries parse where nobody would expect it: NumPy reads every array
header with `ast.literal_eval` (each Flower message's parameters) and `inspect.signature`
parses builtins' signatures (torch's lazy imports). In a federated simulation the ServerApp
and the platforms' ClientApps run in threads of one process, and a platform's round failed
this way (seen once in the test suite). On an affected interpreter, parses take turns.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from typing import Any

AFFECTED = sys.version_info < (3, 11, 8) or (3, 12) <= sys.version_info < (3, 12, 2)
unguarded_parse = ast.parse  # as the interpreter has it, for the tests of the guard
_turns = threading.RLock()  # re-entrant: a collection inside a parse may parse in the same thread
_MARK = "_yinqi_parses_take_turns"


def parses_take_turns() -> bool:
    """Make `ast.parse` (and so `ast.literal_eval`, which calls it) run in one thread at a time,
    on an affected interpreter only. Idempotent; True when parses take turns."""
    if getattr(ast.parse, _MARK, False):
        return True
    if not AFFECTED:
        return False
    original = ast.parse

    @functools.wraps(original)
    def parse(*args: Any, **kwargs: Any) -> Any:
        with _turns:
            return original(*args, **kwargs)

    setattr(parse, _MARK, True)
    ast.parse = parse
    return True
