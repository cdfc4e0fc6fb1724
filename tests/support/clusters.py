"""A real local Redis Cluster for tests: 3 primaries with 1 replica each, valkey-server processes
on free loopback ports, joined by `valkey-cli --cluster create`. Nothing is faked."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis
from tests.support.ports import free_ports

from thingstash.serve.embedded import scratch_command, server_binary

PRIMARIES = 3
# Small, so a replica takes over a killed primary within a couple of seconds.
NODE_TIMEOUT_MS = 1000


def _wait(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test cluster did not get {what} within {timeout} s")
        time.sleep(0.05)


class LocalCluster:
    """Six server processes (3 primaries + 3 replicas) forming one cluster on 127.0.0.1."""

    def __init__(self, directory: Path, primaries: int = PRIMARIES) -> None:
        self.directory = directory
        count = primaries * 2
        ports = free_ports(count * 2)
        self.ports = ports[:count]
        self.bus_ports = ports[count:]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def _start_node(self, port: int, bus_port: int) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            scratch_command(
                port,
                node_dir,
                *("--cluster-port", str(bus_port), "--cluster-enabled", "yes"),
                *("--cluster-config-file", "nodes.conf"),
                *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                *("--logfile", str(node_dir / "server.log")),
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
            self._start_node(port, bus_port)
        for port in self.ports:
            _wait(lambda p=port: self.node(p).ping(), f"node {port} answering")
        cli = str(Path(server_binary()).with_name("valkey-cli"))
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        self.wait_ok()
        # Replicas linked to their primaries, so failover tests start from a replicated state.
        _wait(self._replicas_linked, "its replicas in sync")

    def cluster_info(self, port: int) -> dict[str, str]:
        return self.node(port).cluster("INFO")

    def alive_ports(self) -> list[int]:
        return [port for port, proc in self.processes.items() if proc.poll() is None]

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok and every slot has a live primary."""

        def ok() -> bool:
            return all(
                self.cluster_info(port)["cluster_state"] == "ok"
                and int(self.cluster_info(port)["cluster_slots_ok"]) == 16384
                for port in self.alive_ports()
            )

        _wait(ok, "cluster_state:ok", timeout)

    def _replicas_linked(self) -> bool:
        replicas = 0
        for port in self.alive_ports():
            info = self.node(port).info("replication")
            if info["role"] == "slave":
                if info["master_link_status"] != "up":
                    return False
                replicas += 1
        return replicas == len(self.ports) // 2

    def primary_ports(self) -> list[int]:
        return [
            port
            for port in self.alive_ports()
            if self.node(port).info("replication")["role"] == "master"
        ]

    def kill(self, port: int) -> None:
        """SIGKILL one node: no clean shutdown, as when a machine dies."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
