"""Free loopback ports, for the servers the tests and the benchmarks start."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (a cluster node needs a client port and a bus port):
    all held open until all are found, so none is given twice."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    (port,) = free_ports(1)
    return port
