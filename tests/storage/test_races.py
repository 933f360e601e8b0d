"""Races on the two conditional writes the registry is built on.

Each racer gets its own storage handle (its own HTTP client), as separate publishers would.
Exactly-one-winner is asserted on local disk and on Ceph RGW, a production S3 server. moto
checks its preconditions without a lock, so there only a weaker property is certain; the
test for it says so rather than pretending otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from registry.storage import (
    AlreadyExists,
    LocalStorage,
    PreconditionFailed,
    S3Storage,
    Storage,
)


@pytest.fixture(params=["local", pytest.param("rgw", marks=pytest.mark.rgw)])
def atomic_storage(request: pytest.FixtureRequest, tmp_path) -> Storage:
    """Backends whose conditional writes are atomic under concurrency."""
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    return request.getfixturevalue("rgw_storage")


def _handles(storage: Storage, n: int) -> list[Storage]:
    # boto3 clients are created here, in one thread: creating them concurrently is unsafe.
    if isinstance(storage, S3Storage):
        return [S3Storage(storage.root_uri, storage.settings) for _ in range(n)]
    return [storage] * n


def _race(n: int, attempt: Callable[[int], None]) -> list[BaseException]:
    """Run ``attempt(i)`` in ``n`` threads released together; return unexpected errors."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            attempt(i)
        except BaseException as exc:  # collected and asserted on in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _create_race(storage: Storage, n: int, key: str) -> tuple[list[int], list[BaseException]]:
    handles = _handles(storage, n)
    winners: list[int] = []

    def attempt(i: int) -> None:
        try:
            handles[i].put_if_absent(key, f"racer-{i}".encode())
            winners.append(i)
        except AlreadyExists:
            pass

    return winners, _race(n, attempt)


@pytest.mark.parametrize("racers", [16, 64])
def test_put_if_absent_race_has_exactly_one_winner(atomic_storage: Storage, racers: int) -> None:
    key = "registry/_log/00000000000000000007.json"
    winners, errors = _create_race(atomic_storage, racers, key)
    assert errors == []
    assert len(winners) == 1
    assert atomic_storage.read_bytes(key) == f"racer-{winners[0]}".encode()


@pytest.mark.parametrize("racers", [16, 64])
def test_compare_and_swap_race_has_exactly_one_winner(
    atomic_storage: Storage, racers: int
) -> None:
    key = "registry/latest.json"
    seen = atomic_storage.put_if_absent(key, b"snapshot-0")
    handles = _handles(atomic_storage, racers)
    winners: list[int] = []

    def attempt(i: int) -> None:
        try:
            handles[i].replace_if_match(key, f"snapshot-from-{i}".encode(), seen)
            winners.append(i)
        except PreconditionFailed:
            pass

    assert _race(racers, attempt) == []
    assert len(winners) == 1
    assert atomic_storage.read_bytes(key) == f"snapshot-from-{winners[0]}".encode()


def test_compare_and_swap_counter_loses_no_update(atomic_storage: Storage) -> None:
    """16 writers each add 5 by read-modify-CAS: every increment survives. Each write names
    its writer, as the storage contract asks: a retry after a lost reply (RGW answers some
    racing conditional PUTs with a 500) recognises its own write by content, and two writers'
    identical bytes would be indistinguishable."""
    key = "registry/counter.txt"
    atomic_storage.put_if_absent(key, b"0")
    racers, increments = 16, 5
    handles = _handles(atomic_storage, racers)
    conflicts = [0] * racers

    def attempt(i: int) -> None:
        mine = handles[i]
        for n in range(increments):
            while True:
                etag = mine.head(key).etag
                value = int(mine.read_bytes(key).split()[0])
                try:
                    mine.replace_if_match(key, f"{value + 1} writer-{i}-{n}".encode(), etag)
                    break
                except PreconditionFailed:
                    conflicts[i] += 1

    assert _race(racers, attempt) == []
    assert int(atomic_storage.read_bytes(key).split()[0]) == racers * increments
    assert sum(conflicts) > 0  # the writers really did collide


def test_moto_race_is_not_atomic_only_the_stored_bytes_are_certain(
    s3_settings, s3_bucket: str
) -> None:
    """moto (the in-process S3 emulator) checks If-None-Match and then writes, without a lock:
    several racers can all be told they won. Only "what is stored belongs to a winner" holds,
    which is why the exactly-once properties are proven on Ceph RGW instead."""
    storage = S3Storage(f"s3://{s3_bucket}/root", s3_settings)
    key = "registry/_log/00000000000000000001.json"
    winners, errors = _create_race(storage, 16, key)
    assert errors == []
    assert winners  # at least one, possibly several
    assert int(storage.read_bytes(key).removeprefix(b"racer-")) in winners
