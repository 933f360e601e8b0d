"""Stories of exactly-once and upload order: what councils really send, in the order they send
it, and what a consumer app must then read in the published snapshot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from council_world import CouncilWorld, filing, merchant_code

from registry.ingest.pipeline import ingest_object


def _sh_list(n: int, *, leave_out: int | None = None, **changed: dict[str, str]) -> list[dict]:
    """Shanghai's complete merchants list of ``n`` filings (SH merchants is replace mode)."""
    return [filing("SH", f"SH-{i}", merchant_code("SH", i), **changed.get(f"SH-{i}", {}))
            for i in range(1, n + 1) if i != leave_out]


def test_a_list_sent_to_the_wrong_dataset_first_is_ingested_when_sent_to_the_right_one(
    tmp_path,
):
    """Shanghai's clerk drops the merchants list into the complaints folder by mistake. The
    receipt says the file was refused and asks for it again; she uploads the very same file to
    merchants, and its merchants must be published."""
    world = CouncilWorld(tmp_path)
    wrong = world.upload("SH", "complaints", _sh_list(3))
    assert world.ingest()[wrong].status == "rejected"
    right = world.upload("SH", "merchants", _sh_list(3))
    result = world.ingest()[right]
    assert (result.status, result.accepted) == ("staged", 3)
    assert world.receipt(result)["case"] == "new"
    world.publish()
    assert world.merchant(merchant_code("SH", 1))["trusted"] is True


def test_another_councils_file_sent_by_mistake_does_not_block_that_council(tmp_path):
    """Shanghai uploads Jiangsu's merchants list by mistake: every row names a Jiangsu city, so
    none is accepted. Jiangsu then uploads its own list, byte for byte the same file, and its
    merchants must be published."""
    world = CouncilWorld(tmp_path)
    js_list = [filing("JS", f"JS-{i}", merchant_code("JS", i)) for i in range(1, 4)]
    mistaken = world.upload("SH", "merchants", js_list)
    assert world.ingest()[mistaken].accepted == 0
    own = world.upload("JS", "merchants", js_list)
    result = world.ingest()[own]
    assert (result.status, result.accepted) == ("staged", 3)
    world.publish()
    assert world.merchant(merchant_code("JS", 2))["regions"] == ["JS"]


def test_list_a_then_b_then_a_again_restores_the_merchant_b_left_out(tmp_path):
    """Shanghai sends its complete list A, then list B without SH-5 (delisting it), then
    realises B was wrong and sends A again. SH-5 must be listed again."""
    world = CouncilWorld(tmp_path)
    world.upload("SH", "merchants", _sh_list(5), name="list-a.csv")
    world.ingest()
    world.upload("SH", "merchants", _sh_list(5, leave_out=5), name="list-b.csv")
    world.ingest()
    world.publish()
    assert world.merchant(merchant_code("SH", 5)) is None
    again = world.upload("SH", "merchants", _sh_list(5), name="list-a.csv")
    result = world.ingest()[again]
    world.publish()
    restored = world.merchant(merchant_code("SH", 5))
    assert restored is not None and restored["trusted"] is True
    assert world.changes()[merchant_code("SH", 5)] == "added"
    assert (result.status, result.case) == ("staged", "new")


def test_the_current_list_sent_again_changes_nothing(tmp_path):
    """Shanghai's scheduled export sends the same complete list every night. The second night's
    file is the current state again: its receipt says so and the next snapshot shows no
    change."""
    world = CouncilWorld(tmp_path)
    world.upload("SH", "merchants", _sh_list(3))
    world.ingest()
    world.publish()
    before = world.merchants()
    again = world.upload("SH", "merchants", _sh_list(3))
    result = world.ingest()[again]
    assert (result.status, result.case) == ("duplicate", "duplicate")
    receipt = world.receipt(result)
    assert receipt["case"] == "duplicate" and "不会因此变化" in receipt["summary_zh"]
    world.publish()
    assert world.changes() == {}
    assert world.merchants() == before


def test_the_upload_that_landed_last_wins_whatever_the_file_names(tmp_path):
    """Jiangsu files a merchant under its old name in 'z-march.csv', then renames it in
    'a-april.csv', uploaded a month later. Both are ingested in the same run: the name that
    landed last must be published, whether the run takes the files in name order, in the
    other order, or both at once."""
    for order in ("by name", "reversed", "parallel"):
        world = CouncilWorld(tmp_path / order.replace(" ", "-"))
        code = merchant_code("JS", 1)
        other = [filing("JS", "JS-2", merchant_code("JS", 2))]
        old_name = filing("JS", "JS-1", code, **{"Merchant Name": "金陵旧名商行"})
        new_name = filing("JS", "JS-1", code, **{"Merchant Name": "金陵新名商行"})
        march = world.upload("JS", "merchants", [old_name, *other], name="z-march.csv")
        april = world.upload("JS", "merchants", [new_name, *other], name="a-april.csv")
        if order == "by name":
            world.ingest(sorted([march, april]))
        elif order == "reversed":
            world.ingest([march, april])
        else:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda k, w=world: ingest_object(w.storage, w.settings, k),
                              [april, march]))
        world.publish()
        assert world.merchant(code)["name"] == "金陵新名商行", order


def test_a_typo_in_a_complete_list_does_not_delist_the_merchant(tmp_path):
    """Shanghai's complete list comes back with a typo in SH-3's credit code. The row is
    rejected; SH-3 keeps its previous accepted row and stays listed, and the receipt tells the
    clerk so. Only leaving a filing out of the list withdraws it."""
    world = CouncilWorld(tmp_path)
    world.upload("SH", "merchants", _sh_list(5))
    world.ingest()
    world.publish()
    typo = merchant_code("SH", 3)[:-1] + ("0" if merchant_code("SH", 3)[-1] != "0" else "1")
    corrected = world.upload("SH", "merchants", _sh_list(5, **{"SH-3": {"USCC": typo}}))
    result = world.ingest()[corrected]
    assert (result.accepted, result.quarantined) == (4, 1)
    world.publish()
    kept = world.merchant(merchant_code("SH", 3))
    assert kept is not None and kept["trusted"] is True
    assert merchant_code("SH", 3) not in world.changes()
    assert world.receipt(result)["kept_previous"] == ["SH-3"]


def test_a_complete_list_row_whose_filing_id_was_cleared_does_not_delist_the_merchant(tmp_path):
    """Shanghai's complete list comes back with SH-3's filing-id cell empty (cleared by
    mistake) and its credit code typed in lower case with a space in front. The row is refused,
    as it names no filing; but it does name the merchant, so the merchant keeps its previous
    rows and stays listed, and the receipt says so. Only leaving a merchant out of the list
    withdraws it."""
    world = CouncilWorld(tmp_path)
    world.upload("SH", "merchants", _sh_list(5))
    world.ingest()
    world.publish()
    x = merchant_code("SH", 3)
    cleared = world.upload("SH", "merchants", _sh_list(
        5, **{"SH-3": {"Filing ID": "", "USCC": " " + x.lower()}}))
    result = world.ingest()[cleared]
    assert (result.accepted, result.quarantined) == (4, 1)
    receipt = world.receipt(result)
    assert [(e["column"], e["code"]) for e in receipt["row_errors"]] == [
        ("filing_id", "REQUIRED_MISSING")]
    world.publish()
    kept = world.merchant(x)
    assert kept is not None and kept["trusted"] is True
    assert x not in world.changes()
    assert (receipt["kept_previous"], receipt["kept_previous_merchants"]) == ([], [x])
    # The corrected list brings the filing back under its id; nothing else changes.
    world.upload("SH", "merchants", _sh_list(5))
    world.ingest()
    world.publish()
    assert world.merchant(x)["trusted"] is True and world.changes() == {}


def test_a_merchant_left_out_of_a_complete_list_is_withdrawn_even_if_another_row_was_refused(
    tmp_path,
):
    """Guard: Shanghai's complete list leaves SH-5 out on purpose and has an unrelated row
    refused (SH-3's filing id cleared). SH-5 is withdrawn; SH-3 stays listed."""
    world = CouncilWorld(tmp_path)
    world.upload("SH", "merchants", _sh_list(10))
    world.ingest()
    world.publish()
    world.upload("SH", "merchants", _sh_list(10, leave_out=5, **{"SH-3": {"Filing ID": ""}}))
    world.ingest()
    world.publish()
    assert world.merchant(merchant_code("SH", 5)) is None
    assert world.changes() == {merchant_code("SH", 5): "removed"}
    assert world.merchant(merchant_code("SH", 3))["trusted"] is True
