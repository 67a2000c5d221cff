"""The bank's federated training: Flower ServerApp, strategy, SecAgg+ workflow and run report."""
