"""The checked-in bucket policies: parseable, complete for every region, up to date, and no
council granted anything outside its own landing area."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from policy_generator import POLICY_DIR, generate

from registry.config.regions import load_regions
from registry.config.settings import PROJECT_ROOT

BUCKET_ARN = f"arn:aws:s3:::{generate.DEFAULT_BUCKET}"
REGIONS = list(load_regions(PROJECT_ROOT / "config").regions)


def _checked_in() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(POLICY_DIR.glob("*.json"))}


def _principals(statement: dict) -> list[str]:
    return [arn.rsplit("/", 1)[-1] for arn in statement["Principal"]["AWS"]]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_region_config_and_every_policy_parse() -> None:
    with open(PROJECT_ROOT / "config" / "regions.yaml", encoding="utf-8") as fh:
        assert yaml.safe_load(fh)["regions"]
    policies = _checked_in()
    assert "bucket-policy.json" in policies
    for name, doc in policies.items():
        assert doc["Version"] == "2012-10-17", name
        assert doc["Statement"], name
        for statement in doc["Statement"]:
            assert statement["Effect"] in ("Allow", "Deny")
            assert ("Resource" in statement) != ("NotResource" in statement)
    sids = [s["Sid"] for s in policies["bucket-policy.json"]["Statement"]]
    assert len(sids) == len(set(sids))


def test_every_configured_region_has_a_council_policy_in_the_bucket_policy() -> None:
    policies = _checked_in()
    applied = {s["Sid"] for s in policies["bucket-policy.json"]["Statement"]}
    for region in REGIONS:
        own = policies[f"council-{region}.json"]["Statement"]
        assert {_p for s in own for _p in _principals(s)} == {f"council-{region.lower()}"}
        assert {s["Sid"] for s in own} <= applied


def test_checked_in_policies_are_what_the_config_generates() -> None:
    assert generate.main(["--check"]) == 0, (
        "infra/policies/ is out of date: run .venv/bin/python infra/policies/generate.py"
    )


def test_a_new_region_is_a_config_change(tmp_path: Path) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "config" / "regions.yaml").read_text("utf-8"))
    config["regions"]["GD"] = {
        "name_zh": "广东省", "name_en": "Guangdong", "division_code": "44",
        "cities": {"广州": ["广州市", "Guangzhou"]},
    }
    text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    (tmp_path / "regions.yaml").write_text(text, "utf-8")
    regions = generate.configured_regions(tmp_path)
    assert regions == [*REGIONS, "GD"]
    files = generate.policy_files(regions)
    assert "council-GD.json" in files
    applied = generate.render(files["bucket-policy.json"])
    assert "arn:aws:iam:::user/council-gd" in applied
    assert f"{BUCKET_ARN}/landing/GD/*" in applied


@pytest.mark.parametrize("region", REGIONS)
def test_no_policy_grants_a_council_another_regions_prefix(region: str) -> None:
    """Across every file: whatever a council is allowed, it lies in its own landing area."""
    council = f"council-{region.lower()}"
    own = f"{BUCKET_ARN}/landing/{region}/"
    others = [f"landing/{r}/" for r in REGIONS if r != region]
    allowed = [
        s for doc in _checked_in().values() for s in doc["Statement"]
        if s["Effect"] == "Allow" and council in _principals(s)
    ]
    assert allowed
    for statement in allowed:
        assert "NotResource" not in statement and "NotAction" not in statement
        for resource in _as_list(statement["Resource"]):
            if resource == BUCKET_ARN:  # a listing: only with a prefix inside its own area
                prefixes = _as_list(statement["Condition"]["StringLike"]["s3:prefix"])
                assert all(p.startswith(f"landing/{region}/") for p in prefixes), statement
            else:
                assert resource.startswith(own), statement
            assert not any(other in resource for other in others)
        writes = {"s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl"} & set(statement["Action"])
        if writes:
            assert statement["Condition"]["StringEquals"]["s3:x-amz-acl"] == (
                "bucket-owner-full-control"
            )
            assert not any("_receipts" in r for r in _as_list(statement["Resource"]))


def test_councils_are_explicitly_denied_everything_but_their_landing_area() -> None:
    statements = _checked_in()["bucket-policy.json"]["Statement"]
    for region in REGIONS:
        council = f"council-{region.lower()}"
        denials = [s for s in statements if s["Effect"] == "Deny" and council in _principals(s)]
        fences = [s for s in denials if "NotResource" in s]
        assert [s["NotResource"] for s in fences] == [[f"{BUCKET_ARN}/landing/{region}/*"]]
        assert "s3:PutObject" in fences[0]["Action"]
        receipts = f"{BUCKET_ARN}/landing/{region}/_receipts/*"
        assert any(receipts in _as_list(s.get("Resource", [])) for s in denials)


def test_readers_may_only_read_published_prefixes() -> None:
    statements = _checked_in()["bucket-policy.json"]["Statement"]
    reader = [s for s in statements if "reader" in _principals(s)]
    for statement in reader:
        if statement["Effect"] == "Deny":
            assert "s3:PutObject" in statement["Action"]
            assert statement["Resource"] == [f"{BUCKET_ARN}/*"]
            continue
        assert set(statement["Action"]) <= {"s3:GetObject", "s3:ListBucket"}
        for resource in statement["Resource"]:
            if resource == BUCKET_ARN:
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                assert sorted(prefixes) == ["registry/*", "reports/*"]
            else:
                assert resource in (f"{BUCKET_ARN}/registry/*", f"{BUCKET_ARN}/reports/*")


def test_a_registry_root_prefix_is_applied_to_every_object_resource() -> None:
    policy = generate.bucket_policy(REGIONS, "b", "registry-root/")
    for statement in policy["Statement"]:
        for resource in _as_list(statement.get("Resource") or statement.get("NotResource")):
            if resource != "arn:aws:s3:::b" and statement["Sid"] != "ReaderWritesNothing":
                assert resource.startswith("arn:aws:s3:::b/registry-root/"), statement
