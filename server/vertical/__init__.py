"""The bank's side of vertical federated learning: PSI service, top model, ServerApp, scoring."""
