"""gRPC service definitions (`*.proto`) and their generated stubs (`*_pb2*.py`).

The distribution `yinqi` owns this top-level package. Regenerate the stubs after editing a
`.proto` file with `python -m proto.build`; `python -m proto.build --check` fails when the
committed stubs are stale.
"""
