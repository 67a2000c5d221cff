"""The bank's side: Flower ServerApp and strategy, deployment, model registry, scoring and
credit lines, alert intake, gRPC services and their storage."""
