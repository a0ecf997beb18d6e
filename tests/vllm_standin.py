"""A stand-in for the ``vllm`` command, for tests of the vLLM serving path without a GPU.

Tests install it as an executable named ``vllm`` (see :func:`install`). Run as
``vllm serve MODEL --host H --port P --served-model-name N ...``, it records its argv, pid and
offline environment in ``call-P.json`` next to itself, then serves an OpenAI-compatible API on
H:P: ``GET /v1/models`` lists N, ``POST /v1/chat/completions`` answers a fixed JSON content
for model N (404 for any other name, as vLLM does). An optional ``MODEL/standin.json`` changes
its behaviour: ``{"exit_code": 3, "message": "..."}`` makes it fail at start, ``"load_s"``
delays readiness, ``"content"`` replaces the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ENV_KEYS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK")
DEFAULT_CONTENT = json.dumps({"translation": "No fracture."})


def install(bin_dir: Path) -> Path:
    """Write this stand-in as ``bin_dir/vllm`` (executable, run by this Python)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "vllm"
    exe.write_text(f"#!{sys.executable}\n" + Path(__file__).read_text("utf-8"), "utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


def _serve(host: str, port: int, served_name: str, content: str, requests_log: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server API)
            if self.path.rstrip("/") != "/v1/models":
                return self._send(404, {"error": {"message": "not found", "code": 404}})
            model = {"id": served_name, "object": "model", "created": 0, "owned_by": "vllm"}
            self._send(200, {"object": "list", "data": [model]})

        def do_POST(self):  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with requests_log.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"path": self.path, "body": body}) + "\n")
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, {"error": {"message": "not found", "code": 404}})
            if body.get("model") != served_name:
                msg = f"The model `{body.get('model')}` does not exist."
                return self._send(404, {"error": {"message": msg, "code": 404}})
            message = {"role": "assistant", "content": content}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self._send(
                200,
                {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion",
                    "created": 0,
                    "model": served_name,
                    "choices": [choice],
                },
            )

        def log_message(self, *args):
            pass

    ThreadingHTTPServer((host, port), Handler).serve_forever()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vllm")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("model")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-model-name")
    args, _rest = parser.parse_known_args(argv)
    here = Path(__file__).resolve().parent
    record = {
        "argv": argv,
        "pid": os.getpid(),
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
    }
    (here / f"call-{args.port}.json").write_text(json.dumps(record), "utf-8")
    behaviour_file = Path(args.model) / "standin.json"
    behaviour = json.loads(behaviour_file.read_text("utf-8")) if behaviour_file.exists() else {}
    print(f"stand-in vllm serving {args.model} as {args.served_model_name}", flush=True)
    if "exit_code" in behaviour:
        print(behaviour.get("message", "stand-in failure"), file=sys.stderr, flush=True)
        return int(behaviour["exit_code"])
    time.sleep(float(behaviour.get("load_s", 0.0)))
    _serve(
        args.host,
        args.port,
        args.served_model_name or args.model,
        behaviour.get("content", DEFAULT_CONTENT),
        here / f"requests-{args.port}.jsonl",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
