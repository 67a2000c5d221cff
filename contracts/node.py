"""The bank's embedded chain served as a standard Ethereum JSON-RPC endpoint over HTTP.

The embedded EVM (py-evm through eth-tester, journaled in the data dir) otherwise lives only
inside the processes that open its journal. `yinqi chain node` serves it so that anyone with
the URL — an auditor, web3.py's `HTTPProvider`, another yinqi process with `--rpc` — reads the
same chain. Requests go through eth-tester's own JSON-RPC method table (web3's
`EthereumTesterProvider`), and results are put in wire form (quantities as 0x hex).

What the node accepts is a public node's set: reads, `eth_call`/`eth_estimateGas`, and
*signed* raw transactions (journaled like every other write, so CLI processes see them). It
never signs for anyone (`eth_sendTransaction`, `eth_accounts` are refused: eth-tester's
accounts are unlocked) and never rewrites history (`evm_snapshot`/`evm_revert`); time travel
(`evm_setNextBlockTimestamp`, `evm_mine`) only with `allow_time_travel` (development).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from contracts.errors import _revert_data

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
READ_AND_SEND = frozenset(
    {
        "web3_clientVersion",
        "web3_sha3",
        "net_version",
        "net_listening",
        "net_peerCount",
        "eth_chainId",
        "eth_protocolVersion",
        "eth_syncing",
        "eth_blockNumber",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_blobBaseFee",
        "eth_feeHistory",
        "eth_getBalance",
        "eth_getStorageAt",
        "eth_getTransactionCount",
        "eth_getCode",
        "eth_call",
        "eth_estimateGas",
        "eth_getBlockByHash",
        "eth_getBlockByNumber",
        "eth_getBlockTransactionCountByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getTransactionByHash",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionReceipt",
        "eth_getLogs",
        "eth_sendRawTransaction",
    }
)
TIME_TRAVEL = frozenset({"evm_setNextBlockTimestamp", "evm_mine"})


def to_wire(value: Any) -> Any:
    """A Python result in JSON-RPC wire form: integers as 0x quantities, bytes as 0x data."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return str(value)


def _error(request_id: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class ChainNode:
    """A JSON-RPC server over one journaled eth-tester chain (see the module docstring)."""

    def __init__(self, tester: Any, host: str = "127.0.0.1", port: int = 8545, *, allow_time_travel: bool = False):
        from web3 import EthereumTesterProvider, Web3

        self.tester = tester
        self.allow_time_travel = allow_time_travel
        provider = EthereumTesterProvider(tester)
        w3 = Web3(provider, middleware=[])
        self._request = provider.request_func(w3, w3.middleware_onion)
        self._lock = threading.Lock()  # one request at a time: the chain is one py-evm instance
        self._next_timestamp: int | None = None
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0 or length > MAX_BODY_BYTES:
                    self._reply(413 if length else 411, _error(None, -32600, f"body must be 1..{MAX_BODY_BYTES} bytes"))
                    return
                try:
                    payload = json.loads(self.rfile.read(length))
                except (ValueError, RecursionError):
                    self._reply(200, _error(None, -32700, "parse error: not JSON"))
                    return
                self._reply(200, node.handle(payload))

            def do_GET(self) -> None:
                self._reply(405, _error(None, -32600, "POST JSON-RPC requests to this URL"))

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("chain node: " + format, *args)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle(self, payload: Any) -> Any:
        """Answer one JSON-RPC request or a batch (a list)."""
        if isinstance(payload, list):
            if not payload or len(payload) > 1000:
                return _error(None, -32600, "a batch holds 1..1000 requests")
            return [self._one(item) for item in payload]
        return self._one(payload)

    def _one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, -32600, "invalid request: expected an object with a method")
        request_id = request.get("id")
        method = request["method"]
        params = request.get("params", [])
        if not isinstance(params, list):
            return _error(request_id, -32602, "params must be a list")
        if method in TIME_TRAVEL:
            if not self.allow_time_travel:
                return _error(request_id, -32601, f"{method} is off on this node (start it with --allow-time-travel)")
        elif method not in READ_AND_SEND:
            return _error(request_id, -32601, f"method {method} is not available on this node")
        with self._lock:
            try:
                self.tester.sync()  # blocks other processes appended to the journal
                if method in TIME_TRAVEL:
                    return {"jsonrpc": "2.0", "id": request_id, "result": self._time_travel(method, params)}
                response = self._request(method, params)
            except Exception as exc:
                return self._failure(request_id, exc)
        if "error" in response:
            return {"jsonrpc": "2.0", "id": request_id, "error": to_wire(response["error"])}
        return {"jsonrpc": "2.0", "id": request_id, "result": to_wire(response.get("result"))}

    def _failure(self, request_id: Any, exc: Exception) -> dict[str, Any]:
        data = _revert_data(exc)
        if data is not None:
            raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
            return _error(request_id, 3, "execution reverted", "0x" + raw.hex())
        text = str(exc).strip().splitlines()
        message = text[0][:300] if text else type(exc).__name__
        if message.startswith("execution reverted"):
            return _error(request_id, 3, message)
        return _error(request_id, -32000, message)

    def _time_travel(self, method: str, params: list[Any]) -> Any:
        if method == "evm_setNextBlockTimestamp":
            value = params[0] if params else None
            timestamp = int(value, 16) if isinstance(value, str) else value
            if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp <= 0:
                raise ValueError("evm_setNextBlockTimestamp: expected a unix timestamp")
            self._next_timestamp = timestamp
            return None
        if self._next_timestamp is not None:
            target, self._next_timestamp = self._next_timestamp, None
            self.tester.time_travel(target + 1)  # eth-tester mines its block at T - 1
        else:
            self.tester.mine_blocks(1)
        return "0x0"

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> ChainNode:
        """Serve in a background thread (tests, embedding in another process)."""
        self._thread = threading.Thread(target=self.serve_forever, name="chain-node", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
