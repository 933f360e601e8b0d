"""The ordering property: the same uploads, landed at the same times, give byte-identical
snapshot data whatever their file names, the order the ingest takes them in, and how many it
takes at once.

Each example is a short history of council uploads: Shanghai's complete merchants lists (replace
mode: one filing left out, one suspended, one with a typo in its code), Jiangsu's one- and
two-row merchants updates (upsert: renames, revocations, suspensions), Anhui's inspections, and
uploads that send an earlier file's bytes again. The lists stay within the batch gate's row
ratio whatever came before, so that the gate's verdict on each batch does not depend on which
batches were ingested before it.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from council_world import CouncilWorld, csv_bytes, filing, inspection, merchant_code
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.ingest.pipeline import ingest_object
from registry.snapshot.reader import open_snapshot


def _sh_list(left_out: int, suspended: int, typo: int) -> bytes:
    rows = []
    for i in range(1, 6):
        if i == left_out:
            continue
        code = merchant_code("SH", i)
        rows.append(filing("SH", f"SH-{i}", code if i != typo else code[:-1] + "#",
                           Status="suspended" if i == suspended else "active"))
    return csv_bytes(rows)


def _js_update(rows: list[tuple[int, str, int]]) -> bytes:
    return csv_bytes([
        filing("JS", f"JS-{n}", merchant_code("JS", n), Status=status,
               **{"Merchant Name": f"金陵{name}商行"})
        for n, status, name in rows
    ])


def _ah_inspections(results: list[tuple[int, str]]) -> bytes:
    return csv_bytes([
        inspection(f"AH-T-{n}", merchant_code("JS", n), 检测结论=result,
                   严重程度="严重" if result == "fail" else "")
        for n, result in results
    ])


_SH = st.builds(
    lambda left, susp, typo: ("SH", "merchants",
                              _sh_list(left, susp, typo if left == 0 else 0)),
    st.integers(0, 5), st.integers(0, 5), st.integers(0, 5),
)
_JS = st.builds(
    lambda rows: ("JS", "merchants", _js_update(rows)),
    st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["active", "revoked", "suspended"]),
                       st.integers(1, 3)),
             min_size=1, max_size=2, unique_by=lambda r: r[0]),
)
_AH = st.builds(
    lambda results: ("AH", "inspections", _ah_inspections(results)),
    st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["pass", "fail"])),
             min_size=1, max_size=2, unique_by=lambda r: r[0]),
)


@st.composite
def _histories(draw) -> list[tuple[str, str, bytes]]:
    uploads = draw(st.lists(st.one_of(_SH, _JS, _AH), min_size=2, max_size=5))
    # Now and then, an earlier file's exact bytes sent again.
    for _ in range(draw(st.integers(0, 2))):
        uploads.append(uploads[draw(st.integers(0, len(uploads) - 1))])
    return uploads


def _published_files(world: CouncilWorld, history, names, order, threads) -> dict[str, str]:
    keys = [world.upload(region, dataset, data, name=name,
                         at=world.clock + timedelta(minutes=i + 1))
            for i, ((region, dataset, data), name) in enumerate(zip(history, names,
                                                                    strict=True))]
    if threads == 1:
        for i in order:
            ingest_object(world.storage, world.settings, keys[i])
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda i: ingest_object(world.storage, world.settings, keys[i]),
                          order))
    world.publish()
    manifest = open_snapshot(world.storage).manifest
    return {entry.path: entry.sha256 for entry in manifest.files}


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=_histories(), seed=st.integers(0, 2**32 - 1), threads=st.sampled_from([1, 2]))
def test_file_names_ingest_order_and_parallelism_never_change_the_snapshot(
    tmp_path_factory, history, seed, threads,
):
    """Councils' uploads are ingested as they land, in landing order, one at a time; then the
    same uploads, landed at the same times under other file names, are ingested in a shuffled
    order, one or two at once. A consumer app must read the same snapshot data, byte for
    byte."""
    shuffle = random.Random(seed)
    n = len(history)
    in_landing_order = _published_files(
        CouncilWorld(tmp_path_factory.mktemp("landing-order")), history,
        [f"upload-{i:02d}.csv" for i in range(n)], list(range(n)), 1)
    names = [f"{shuffle.choice('abcxyz')}-{i:02d}.csv" for i in range(n)]
    shuffle.shuffle(names)
    order = list(range(n))
    shuffle.shuffle(order)
    shuffled = _published_files(CouncilWorld(tmp_path_factory.mktemp("shuffled")), history,
                                names, order, threads)
    assert shuffled == in_landing_order
