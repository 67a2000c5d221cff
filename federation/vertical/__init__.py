"""Vertical federated learning maths and data shared by the bank and the platforms (no network)."""
