"""Pod address allocation and port checks."""

from __future__ import annotations

import socket
from pathlib import Path

from nodeagent.network import PodAddresses, free_host_port, port_problem


def test_addresses_are_new_for_each_pod(tmp_path: Path) -> None:
    pool = PodAddresses("127.5.0.0/16", tmp_path / "next")
    first = pool.allocate()
    second = pool.allocate()
    assert first == "127.5.0.2" and second == "127.5.0.3"
    pool.release(first)
    assert pool.allocate() == "127.5.0.4", "a released address is not handed out again soon"
    again = PodAddresses("127.5.0.0/16", tmp_path / "next")
    assert again.allocate() == "127.5.0.5", "the counter survives an agent restart"
    assert again.claim("127.5.0.2") and not again.claim("127.5.0.2") and not again.claim("127.9.0.1")


def test_wraps_and_skips_in_use(tmp_path: Path) -> None:
    pool = PodAddresses("127.6.0.0/29", tmp_path / "next")  # .2 .. .6 usable here
    got = [pool.allocate() for _ in range(5)]
    assert len(set(got)) == 5
    pool.release("127.6.0.4")
    assert pool.allocate() == "127.6.0.4"


def test_port_problem_says_what() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_problem("127.0.0.1", port) == f"port {port} on 127.0.0.1 is already in use"
    assert port_problem("127.0.0.1", free_host_port("127.0.0.1")) is None


def test_skips_an_address_whose_declared_port_is_taken_on_this_host(tmp_path: Path) -> None:
    pool = PodAddresses("127.7.0.0/16", tmp_path / "next")
    with socket.socket() as other_cluster:  # e.g. another cluster's pod, or an earlier one's TIME_WAIT
        other_cluster.bind(("127.7.0.2", 0))
        other_cluster.listen()
        port = other_cluster.getsockname()[1]
        assert pool.allocate((port,)) == "127.7.0.3"
        assert pool.allocate((port,)) == "127.7.0.4"
    assert pool.allocate((port,)) == "127.7.0.5", "the counter moves on; it does not go back"
