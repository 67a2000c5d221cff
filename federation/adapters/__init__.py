"""Thin adapters holding every use of a dependency's internals (one module per dependency)."""
