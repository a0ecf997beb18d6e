"""A real multi-node Ray cluster on this machine's loopback range, for tests.

Every node is a ``ray start --block`` process on 127.0.0.2 (Ray rewrites 127.0.0.1 to the
machine's outward address, so the test uses another loopback address to keep every byte on
the loopback interface) with its own dashboard-agent port and a temp dir of its own. Token
authentication is configured as the README tells users: one token made by ``ray
get-auth-token --generate``, the same ``RAY_AUTH_MODE=token`` and token file for every node and
every driver. Nodes are stopped by their PIDs (SIGTERM), never with ``ray stop``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

IP = "127.0.0.2"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((IP, 0))
        return s.getsockname()[1]


@dataclass
class Node:
    """One ``ray start`` process."""

    name: str
    proc: subprocess.Popen
    log: Path


@dataclass
class LoopbackCluster:
    """A head and worker nodes; ``workers`` maps a name to ``ray start`` resource options."""

    root: Path
    workers: dict[str, dict] = field(default_factory=dict)
    head_cpus: int = 1
    dashboard: bool = False
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dashboard_port = free_port()
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        # As the README says: one token, generated once, given to every node and driver.
        subprocess.run(
            [str(BIN / "ray"), "get-auth-token", "--generate"],
            env={**os.environ, "HOME": str(home)},
            check=True,
            capture_output=True,
        )
        self.token_path = home / ".ray" / "auth_token"
        assert self.token_path.is_file()
        # Ray puts its AF_UNIX sockets under the temp dir, and such a path may not exceed 107
        # bytes: a pytest folder (its length grows with the run number) is too deep for it.
        self.ray_temp = Path(tempfile.mkdtemp(prefix="rr-", dir="/tmp"))

    @property
    def address(self) -> str:
        return f"{IP}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{IP}:{self.dashboard_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a node or a driver of this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            RAY_USAGE_STATS_ENABLED="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def _start(self, name: str, args: list[str], wrap: list[str] = ()) -> None:
        log = self.root / f"{name}.log"
        # ``wrap``: a command that execs the node (e.g. in a mount namespace of its own)
        cmd = [*wrap, str(BIN / "ray"), "start", "--block", f"--node-ip-address={IP}"]
        cmd += [f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={self.ray_temp}"]
        cmd += [f"--object-store-memory={400 * 2**20}"]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                cmd + args, stdout=fh, stderr=subprocess.STDOUT, env=self.env(), cwd=self.root
            )
        self.nodes.append(Node(name, proc, log))

    def start(self, timeout: float = 120.0) -> LoopbackCluster:
        head = ["--head", f"--port={self.port}", f"--num-cpus={self.head_cpus}"]
        if self.dashboard:
            head += ["--include-dashboard=true", f"--dashboard-host={IP}"]
            head += [f"--dashboard-port={self.dashboard_port}"]
        else:
            head += ["--include-dashboard=false"]
        self._start_node("head", head, 1, timeout)
        for i, (name, opts) in enumerate(self.workers.items(), start=2):
            args = [f"--address={self.address}", f"--num-cpus={opts.get('num_cpus', 1)}"]
            if opts.get("resources"):
                args.append(f"--resources={json.dumps(opts['resources'])}")
            self._start_node(name, args, i, timeout, opts.get("wrap", []))
        return self

    def _start_node(
        self, name: str, args: list[str], expect: int, timeout: float, wrap: list[str] = ()
    ) -> None:
        """Start one node and wait until ``expect`` nodes are alive. A node gives up when it
        has not registered within Ray's fixed 30 s (a busy machine): one more try."""
        for attempt in (1, 2):
            self._start(name, args, wrap)
            try:
                self.wait_nodes(expect, timeout)
                return
            except (RuntimeError, TimeoutError):  # exited, or never registered: start anew
                self.stop_node(name)
                self.nodes = [n for n in self.nodes if n.name != name]
                if attempt == 2:
                    raise

    def alive_nodes(self) -> list[dict]:
        """Alive nodes as Ray reports them (asked from a separate driver process)."""
        code = (
            "import json, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR')\n"
            "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']}"
            " for n in ray.nodes() if n['Alive']]))"
        )
        try:
            out = subprocess.run(
                [sys.executable, "-c", code],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            return []
        if out.returncode != 0:
            return []
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_nodes(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [x.name for x in self.nodes if x.proc.poll() is not None]
            if dead:
                raise RuntimeError(f"ray node(s) {dead} exited: see {self.root}/*.log")
            if len(self.alive_nodes()) >= n:
                return
            time.sleep(1.0)
        raise TimeoutError(f"{n} Ray nodes not alive after {timeout:.0f} s")

    def pid(self, name: str) -> int:
        """The PID of a running node's ``ray start`` process."""
        (node,) = [n for n in self.nodes if n.name == name and n.proc.poll() is None]
        return node.proc.pid

    def stop_node(self, name: str, timeout: float = 30.0) -> None:
        for node in self.nodes:
            if node.name == name and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
                try:
                    node.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.stop_node(node.name)
        shutil.rmtree(self.ray_temp, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
