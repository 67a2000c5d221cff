"""Shared core of yinqi: schema, features, model, privacy accounting, metrics.

Imported by the platform side (`clients`) and the bank side (`server`) alike; it does no
network I/O of its own.
"""

from federation.interpreter import parses_take_turns

# every process of the platform imports this package first; a library may parse in any
# thread (`federation.interpreter`)
parses_take_turns()
