"""A platform's side of vertical federated learning: PSI party, bottom model, embedding service."""
