"""The vLLM serving path without a GPU: a stand-in ``vllm`` executable (tests/vllm_standin.py,
a separate process with an OpenAI-compatible API) served by the real VLLMServer actor on a
local Ray, reached by the real LLM client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import vllm_standin

from refrad_builder.engine.config import LLMConfig
from refrad_builder.text.llm_client import LLMClient, LLMUnavailable, Request
from refrad_builder.text.prompts import load_prompt
from refrad_builder.text.serve import (
    VLLM_ACTOR_NAME,
    ServeError,
    VLLMServer,
    free_port,
    start_vllm_actor,
)

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {k: "1" for k in vllm_standin.ENV_KEYS}


@pytest.fixture(scope="module")
def standin_bin(tmp_path_factory) -> Path:
    """A folder holding the stand-in ``vllm``, first on PATH for the module (and so for the
    Ray workers, which inherit the environment of ray.init)."""
    bin_dir = tmp_path_factory.mktemp("vllm_bin")
    vllm_standin.install(bin_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        yield bin_dir


@pytest.fixture(scope="module")
def ray_local(standin_bin):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model folder as copied onto a node (the stand-in reads only standin.json)."""
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "gemma3"}', "utf-8")
    return path


def _record(bin_dir: Path, port: int) -> dict:
    return json.loads((bin_dir / f"call-{port}.json").read_text("utf-8"))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _wait(cond, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _no_actor(ray) -> bool:
    try:
        ray.get_actor(VLLM_ACTOR_NAME)
    except ValueError:
        return True
    return False


def test_actor_serves_local_model_offline(ray_local, standin_bin, model_dir, tmp_path):
    ray = ray_local
    port = free_port()
    actor, url = start_vllm_actor(
        model_dir, served_name="gemma-test", num_gpus=0, port=port, max_num_seqs=4, timeout_s=30
    )
    try:
        host = ray.util.get_node_ip_address()
        assert url == f"http://{host}:{port}/v1"  # the node's address, reachable from others
        assert ray.get(actor.alive.remote())

        prompt = load_prompt("translate", "en")
        cfg = LLMConfig(url=url, flavor="vllm", model="gemma-test", max_retries=0)
        [answer] = LLMClient(cfg, tmp_path / "cache").complete_many(
            [Request(prompt, {"text": "Keine Fraktur."})]
        )
        assert answer == {"translation": "No fracture."}
        # llm.model must be the served name: the default "local" is unknown to this server
        wrong = LLMConfig(url=url, flavor="vllm", max_retries=0)
        [err] = LLMClient(wrong, tmp_path / "cache2").complete_many(
            [Request(prompt, {"text": "Keine Fraktur."})]
        )
        assert isinstance(err, LLMUnavailable)

        record = _record(standin_bin, port)
        argv = record["argv"]
        assert argv[:2] == ["serve", str(model_dir)]
        flags = dict(zip(argv[2::2], argv[3::2], strict=True))
        assert flags == {
            "--served-model-name": "gemma-test",
            "--host": "0.0.0.0",
            "--port": str(port),
            "--max-num-seqs": "4",
        }
        assert record["env"] == OFFLINE
        sent = [
            json.loads(line)
            for line in (standin_bin / f"requests-{port}.jsonl").read_text().splitlines()
        ]
        assert sent[0]["body"]["response_format"]["type"] == "json_schema"
        log = Path(ray.get(actor.log_path.remote()))
        assert "stand-in vllm serving" in log.read_text()  # server output went to the log

        ray.get(actor.stop.remote())
        ray.get(actor.stop.remote())  # idempotent
        assert not ray.get(actor.alive.remote())
        assert _gone(record["pid"])
        assert _refused(host, port)
    finally:
        ray.kill(actor)
        assert _wait(lambda: _no_actor(ray))


def test_killing_the_actor_ends_the_server(ray_local, standin_bin, model_dir):
    ray = ray_local
    port = free_port()
    actor, url = start_vllm_actor(model_dir, num_gpus=0, port=port, timeout_s=30)
    pid = _record(standin_bin, port)["pid"]
    assert not _gone(pid)
    ray.kill(actor)
    assert _wait(lambda: _gone(pid)), "the vllm process outlived its actor (GPU leak)"
    assert _wait(lambda: _no_actor(ray))


def test_failed_start_leaves_no_actor(ray_local, standin_bin, model_dir):
    ray = ray_local
    (model_dir / "standin.json").write_text(
        json.dumps({"exit_code": 3, "message": "CUDA out of memory (stand-in)"}), "utf-8"
    )
    with pytest.raises(ServeError) as exc:
        start_vllm_actor(model_dir, num_gpus=0, port=free_port(), timeout_s=30)
    assert "exited with code 3" in str(exc.value)
    assert "CUDA out of memory (stand-in)" in str(exc.value)  # the log tail explains why
    with pytest.raises(ValueError):
        ray.get_actor(VLLM_ACTOR_NAME)


def test_actor_refuses_a_hub_name(ray_local, standin_bin):
    ray = ray_local
    port = free_port()
    with pytest.raises(ServeError, match="copy the model folder"):
        start_vllm_actor("google/gemma-3-4b-it", num_gpus=0, port=port, timeout_s=30)
    assert not (standin_bin / f"call-{port}.json").exists()  # no process was started
    with pytest.raises(ValueError):
        ray.get_actor(VLLM_ACTOR_NAME)


def test_local_checks_before_any_process(standin_bin, model_dir, tmp_path, monkeypatch):
    port = free_port()
    for model, expected in [
        ("google/gemma-3-4b-it", "copy the model folder"),
        (tmp_path / "model.gguf", "copy the model folder"),
        (tmp_path, "no config.json"),
    ]:
        if isinstance(model, Path) and model.suffix:
            model.write_bytes(b"GGUF")
        server = VLLMServer(model, port=port)
        with pytest.raises(ServeError, match=expected):
            server.start()
        assert server.proc is None
    assert not (standin_bin / f"call-{port}.json").exists()

    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    server = VLLMServer(model_dir, port=port)
    with pytest.raises(ServeError, match=r"refrad-builder\[llm-vllm\]"):
        server.start()
    assert server.proc is None


def test_readiness_timeout_stops_the_server(standin_bin, model_dir, tmp_path):
    (model_dir / "standin.json").write_text('{"load_s": 30}', "utf-8")
    port = free_port()
    server = VLLMServer(model_dir, port=port, log=tmp_path / "logs" / "vllm.log")
    server.start()
    with pytest.raises(ServeError, match="no answer"):
        server.url(timeout_s=1)
    assert not server.alive()
    assert _gone(_record(standin_bin, port)["pid"])
    assert (tmp_path / "logs" / "vllm.log").read_text().startswith("$ vllm serve ")
    server.stop()  # idempotent after a failure


def test_cli_serves_until_ctrl_c(ray_local, standin_bin, model_dir):
    ray = ray_local
    port = free_port()
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    cmd = [
        sys.executable,
        "-m",
        "refrad_builder.cli",
        "llm",
        "serve",
        "--backend",
        "vllm",
        "--model",
        str(model_dir),
        "--served-name",
        "cli-model",
        "--gpus",
        "0",
        "--port",
        str(port),
        "--timeout",
        "30",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = ""
        while "llm.url=" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "refrad llm serve exited before it was ready"
        settings = dict(w.split("=", 1) for w in line.split() if w.startswith("llm."))
        host = ray.util.get_node_ip_address()
        assert settings == {
            "llm.url": f"http://{host}:{port}/v1",
            "llm.flavor": "vllm",
            "llm.model": "cli-model",
        }
        pid = _record(standin_bin, port)["pid"]
        assert not _gone(pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert _wait(lambda: _gone(pid))
        assert _refused(host, port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
