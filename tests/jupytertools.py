"""Talking to a real Jupyter server's kernels as JupyterLab does: over a kernel websocket (Jupyter's message
protocol), for the integration and end-to-end tests."""

from __future__ import annotations

import json
import time
import uuid

import websocket


def channels(url: str, token: str, timeout: float = 120) -> websocket.WebSocket:
    """A kernel's websocket, ``url`` being ``ws://HOST:PORT/PREFIX/api/kernels/ID/channels``."""
    return websocket.create_connection(f"{url}?session_id={uuid.uuid4().hex}", header=[f"Authorization: token {token}"],
                                       timeout=timeout)


def send_execute(ws: websocket.WebSocket, code: str) -> str:
    """Send an execute_request for ``code``; its message id."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": msg_id,
                   "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    return msg_id


def outcome(ws: websocket.WebSocket, msg_id: str, timeout: float = 120) -> tuple[dict, str]:
    """The execute_reply's content and the stdout of the request ``msg_id``, once the kernel is idle again."""
    out, reply, idle, deadline = [], None, False, time.monotonic() + timeout
    while not (reply and idle):  # the reply (shell) and the output (iopub) come in either order
        assert time.monotonic() < deadline, f"no execute_reply and idle status within {timeout} s"
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "execute_reply":
            reply = msg["content"]
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle = True
    return reply, "".join(out)


def execute(ws: websocket.WebSocket, code: str, timeout: float = 120) -> str:
    """Run ``code`` through the websocket; its stdout."""
    reply, out = outcome(ws, send_execute(ws, code), timeout)
    assert reply["status"] == "ok", reply
    return out
