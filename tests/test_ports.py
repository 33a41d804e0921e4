"""free_port: ports for servers started later, safe from outgoing connections' source ports."""

from __future__ import annotations

import socket

from muzero.operations.redis_process import _ephemeral_range, free_port


def test_ports_are_bindable_distinct_and_outside_the_ephemeral_range():
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(100)]
    assert len(set(ports)) == len(ports)
    assert not any(low <= port <= high for port in ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_skipped(monkeypatch):
    import muzero.operations.redis_process as ports

    with socket.socket() as held:
        for port in range(20_000, 21_000):  # some port below the ephemeral range nobody holds
            try:
                held.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
        held.listen()
        spare = port + 1
        draws = iter([port, spare])  # the held port comes up first
        monkeypatch.setattr(ports.random, "choice", lambda candidates: next(draws))
        assert free_port() == spare
