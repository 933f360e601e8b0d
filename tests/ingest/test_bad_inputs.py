"""Hostile and broken uploads (tests/fixtures/bad/make_bad.py): every one is refused whole with
its stable code and a receipt, inside the product's time and memory limits for reading, with no
crash and no unhandled exception; and a fuzz test of the readers over mutated council files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fixtures.bad import make_bad
from fixtures.council_files import FIXTURES, check_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import ledger
from registry.config.settings import Settings
from registry.ingest import rejections as rj
from registry.ingest.pipeline import ingest_pending, read_limits
from registry.storage import LocalStorage

# The product's own limits for this test (Settings.read_time_limit_s, read_memory_limit_mb):
# every upload is read in a worker held to them. A file refused for its own reason,
# not with READ_TIME_LIMIT or READ_MEMORY_LIMIT, was refused within them.
BOUNDED = Settings(_env_file=None, read_time_limit_s=15.0, read_memory_limit_mb=1536)


def _dataset(name: str) -> str:
    if name.endswith(".jsonl"):
        return "inspections"
    return "gift_evaluations" if name.endswith(".parquet") else "merchants"


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-big")
    make_bad.write_big(folder)
    return folder


def test_the_corpus_has_forty_distinct_files(big_folder: Path) -> None:
    paths = [make_bad.path_of(name, big_folder) for name in make_bad.CORPUS]
    assert len(paths) >= 40
    assert len({p.read_bytes() for p in paths}) == len(paths)
    committed = {p.name for p in make_bad.HERE.iterdir() if p.suffix != ".py"}
    assert committed == set(make_bad.SMALL), "run tests/fixtures/bad/make_bad.py"


@pytest.mark.slow
def test_every_bad_file_is_refused_whole_within_time_and_memory(
    big_folder: Path, record_property
) -> None:
    limits = read_limits(BOUNDED)
    seen = {}
    for name in sorted(make_bad.CORPUS):
        data = make_bad.path_of(name, big_folder).read_bytes()
        check = check_bytes(data, _dataset(name), "SH", file=name, limits=limits)
        seen[name] = check.file_error.code if check.file_error else "ROWS"
    assert seen == {name: code for name, (_, code) in make_bad.CORPUS.items()}
    assert set(seen.values()) <= set(rj.FILE_MESSAGES)
    record_property("bad_inputs_tried", len(seen))
    record_property("bad_inputs_refused_whole", sum(
        code == make_bad.CORPUS[name][1] for name, code in seen.items()))


@pytest.mark.slow
def test_every_bad_upload_gets_a_receipt_with_its_code(tmp_path, big_folder: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    keys = {}
    for name in make_bad.CORPUS:
        key = f"landing/SH/{_dataset(name)}/{name}"
        storage.write_bytes(key, make_bad.path_of(name, big_folder).read_bytes())
        keys[key] = name
    results = ingest_pending(storage, BOUNDED).results
    assert {r.key for r in results} == set(keys)
    for r in results:
        expected = make_bad.CORPUS[keys[r.key]][1]
        assert (r.status, r.file_error, r.batch_id) == ("rejected", expected, None), r.key
        receipt = json.loads(storage.read_bytes(r.receipt))
        assert receipt["status"] == "rejected"
        # Every problem of the file is listed, the one it is known for first.
        codes = [e["code"] for e in receipt["file_errors"]]
        assert codes[0] == expected and set(codes) <= set(rj.FILE_MESSAGES), codes
        assert receipt["file_errors"][0]["message_zh"] and receipt["file_errors"][0]["message_en"]
        table = storage.read_bytes(r.receipt.removesuffix(".json") + ".csv")
        cells = [c for row in csv.reader(io.StringIO(table.decode("utf-8-sig"))) for c in row]
        assert not any(c.startswith(("=", "+", "-", "@")) for c in cells), r.key
    assert list(storage.list("staged/")) == [] and ledger.committed_refs(storage) == set()
    # Nothing a council sent is lost: every file read is archived, byte for byte.
    assert len(list(storage.list("raw/SH/"))) == 2 * len(keys)


# -- fuzzing the readers -------------------------------------------------------------------

SEEDS = {
    "merchants_sh_gb18030.csv": "merchants", "merchants_js_bom.csv": "merchants",
    "complaints_zj.xlsx": "complaints", "inspections_ah.jsonl": "inspections",
    "gift_evaluations_zj.parquet": "gift_evaluations",
}
SEED_BYTES = {name: (FIXTURES / name).read_bytes() for name in SEEDS}


@st.composite
def mutated_upload(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEED_BYTES[name])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "repeat"]))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 256))] * draw(st.integers(2, 8))
    return SEEDS[name], bytes(data)


@settings(max_examples=150, deadline=3000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_upload())
def test_mutated_council_files_give_typed_outcomes_only(upload: tuple[str, bytes]) -> None:
    """150 mutations, each under 3 s: the readers and validation either read the file (rows in
    = accepted + quarantined) or refuse it whole with a known code; nothing else escapes."""
    dataset, data = upload
    check = check_bytes(data, dataset, "SH")
    if check.file_error is not None:
        assert check.file_error.code in rj.FILE_MESSAGES
        check.file_error.as_dict("upload.csv")  # its messages format
    else:
        assert check.rows_in == check.accepted.height + check.rejected
