"""Shared core of yinqi: schema, features, model, privacy accounting, metrics.

Imported by the platform side (`clients`) and the bank side (`server`) alike; it does no
network I/O of its own.
"""
