"""The least-connections balancer, without I/O."""

from __future__ import annotations

from proxy.balancer import Balancer, Endpoint


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def three(clock: Clock | None = None, **kwargs: float | None) -> Balancer:
    balancer = Balancer(clock=clock or Clock(), **kwargs)  # type: ignore[arg-type]
    balancer.update([("10.0.0.1", 80, "a"), ("10.0.0.2", 80, "b"), ("10.0.0.3", 80, "c")])
    return balancer


def picked(balancer: Balancer, count: int, client: str = "1.1.1.1") -> list[str]:
    out = []
    for _ in range(count):
        endpoint = balancer.pick(client)
        assert endpoint is not None
        out.append(endpoint.target)
    return out


def test_ties_rotate_so_short_connections_spread_evenly() -> None:
    balancer = three()
    chosen = []
    for _ in range(6):
        endpoint = balancer.pick("1.1.1.1")
        assert endpoint is not None
        balancer.connected(endpoint)
        balancer.closed(endpoint)
        chosen.append(endpoint.target)
    assert chosen == ["a", "b", "c", "a", "b", "c"]
    assert [e.total for e in balancer.endpoints] == [2, 2, 2]
    assert [e.active for e in balancer.endpoints] == [0, 0, 0]


def test_an_unpicked_endpoint_keeps_its_turn() -> None:
    balancer = three()
    chosen = []
    for _ in range(6):  # each pick asked twice: once only to look (undone), then for real
        looked = balancer.pick("1.1.1.1")
        assert looked is not None
        balancer.unpick(looked)
        endpoint = balancer.pick("1.1.1.1")
        assert endpoint is looked
        balancer.closed(endpoint)
        chosen.append(endpoint.target)
    assert chosen == ["a", "b", "c", "a", "b", "c"]
    assert [e.active for e in balancer.endpoints] == [0, 0, 0]


def test_new_connections_go_to_the_least_busy() -> None:
    balancer = three()
    held = picked(balancer, 3)  # one long connection on each
    assert sorted(held) == ["a", "b", "c"]
    a = balancer.endpoints[0]
    a.active += 5  # a is busy with five more
    assert set(picked(balancer, 4)) == {"b", "c"}
    assert [e.active for e in balancer.endpoints] == [6, 3, 3]


def test_a_pick_counts_at_once_so_a_burst_spreads_before_anyone_connects() -> None:
    balancer = three()
    assert sorted(picked(balancer, 9)) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


def test_refused_is_undone_excluded_and_tried_last_for_a_while() -> None:
    clock = Clock()
    balancer = three(clock, refused_penalty=1.0)
    first = balancer.pick("1.1.1.1")
    assert first is not None and first.target == "a"
    balancer.refused(first)
    assert first.active == 0
    second = balancer.pick("1.1.1.1", exclude=[first])
    assert second is not None and second.target == "b"
    # even though a is idle and b, c are busy, a is tried last while its penalty lasts
    assert picked(balancer, 3) == ["c", "b", "c"]
    clock.now += 1.5
    assert picked(balancer, 1) == ["a"]


def test_nothing_left_to_try_gives_none() -> None:
    balancer = three()
    tried: list[Endpoint] = []
    while (endpoint := balancer.pick("1.1.1.1", exclude=tried)) is not None:
        tried.append(endpoint)
        balancer.refused(endpoint)
    assert len(tried) == 3
    assert Balancer().pick("1.1.1.1") is None


def test_update_keeps_counts_of_endpoints_that_stay_and_forgets_the_rest() -> None:
    balancer = three()
    picked(balancer, 3)
    old_a = balancer.endpoints[0]
    balancer.update([("10.0.0.2", 80, "b"), ("10.0.0.9", 80, "z")])
    assert [(e.target, e.active) for e in balancer.endpoints] == [("b", 1), ("z", 0)]
    assert all(e is not old_a for e in balancer.endpoints)
    balancer.closed(old_a)  # a connection on a removed endpoint ends: nothing breaks
    assert old_a.active == 0
    assert picked(balancer, 1) == ["z"]


def test_client_ip_affinity_sticks_until_the_timeout() -> None:
    clock = Clock()
    balancer = three(clock, affinity_timeout=10.0)
    assert picked(balancer, 3, client="9.9.9.9") == ["a", "a", "a"]
    assert picked(balancer, 1, client="8.8.8.8") == ["b"]
    clock.now += 11
    assert picked(balancer, 1, client="9.9.9.9") == ["c"]


def test_affinity_moves_when_its_endpoint_goes_or_refuses() -> None:
    balancer = three(affinity_timeout=100.0)
    first = balancer.pick("9.9.9.9")
    assert first is not None and first.target == "a"
    balancer.update([("10.0.0.2", 80, "b"), ("10.0.0.3", 80, "c")])
    moved = balancer.pick("9.9.9.9")
    assert moved is not None and moved.target != "a"
    balancer.refused(moved)
    again = balancer.pick("9.9.9.9", exclude=[moved])
    assert again is not None and again is not moved
    assert picked(balancer, 1, client="9.9.9.9") == [again.target]


def test_statistics_and_addresses() -> None:
    balancer = Balancer()
    balancer.update([("10.0.0.1", 80, "a"), ("fd00::1", 8080, "b")])
    endpoint = balancer.pick("1.1.1.1")
    assert endpoint is not None
    balancer.connected(endpoint)
    assert balancer.statistics() == {"10.0.0.1:80": (1, 1), "[fd00::1]:8080": (0, 0)}
