"""Bucket policies for the registry's bucket, generated from ``config/regions.yaml``.

Who may do what (docs/architecture.md §2.2):

- each council (``council-<region>``) may write only under its own ``landing/{REGION}/``, and
  only with the ``bucket-owner-full-control`` ACL, so the pipeline (the bucket owner) can read
  what it sent. It may list its own landing area and read its own receipts, but not write
  them: receipts are the pipeline's answer, and a council must not be able to forge one.
  Explicit denials back this up even if an identity policy grants a council more;
- downstream readers (``reader``) may only list and read ``registry/`` and ``reports/``, and
  are explicitly denied every write;
- the pipeline (``pipeline``) gets the rest: every object under the registry root.

A new region is a change to ``config/regions.yaml`` only: rerun this script and commit the
JSON (a test fails while the checked-in files are out of date).

    python infra/policies/generate.py                  # rewrite the checked-in files
    python infra/policies/generate.py --check          # exit 1 when they are out of date
    python infra/policies/generate.py --bucket B --prefix P --out DIR   # for a deployment

Principals are S3 users in the form Ceph RGW uses, ``arn:aws:iam:::user/NAME``; on AWS put
the account's role ARNs in their place. Councils upload with single PUTs (``registry upload``;
uploads are capped far below S3's 5 GB single-PUT limit), so no multipart permission is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from registry.config.regions import load_regions
from registry.storage import layout

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
DEFAULT_BUCKET = "yrd-registry"

PIPELINE_USER = "pipeline"
READER_USER = "reader"
# What downstream readers may read: the published snapshots and the reports.
READER_PREFIXES = (layout.PUBLISHED_PREFIX, layout.REPORTS_PREFIX)
OWNER_ACL = "bucket-owner-full-control"
WRITE_ACTIONS = ["s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject", "s3:DeleteObjectVersion"]
POLICY_VERSION = "2012-10-17"


def council_user(region: str) -> str:
    return f"council-{region.lower()}"


def _principal(user: str) -> dict[str, list[str]]:
    return {"AWS": [f"arn:aws:iam:::user/{user}"]}


def _objects(bucket: str, prefix: str, path: str = "") -> str:
    return f"arn:aws:s3:::{bucket}/{prefix}{path}*"


def _root(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def council_statements(region: str, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    """The statements for one region's council. ``prefix`` is the registry root in the bucket."""
    root = _root(prefix)
    who = _principal(council_user(region))
    landing = f"landing/{region}/"
    receipts = f"{landing}_receipts/"
    return [
        {
            "Sid": f"Council{region}WritesOwnLanding",
            "Effect": "Allow",
            "Principal": who,
            "Action": ["s3:PutObject"],
            "Resource": [_objects(bucket, root, landing)],
            "Condition": {"StringEquals": {"s3:x-amz-acl": OWNER_ACL}},
        },
        {
            "Sid": f"Council{region}ListsOwnLanding",
            "Effect": "Allow",
            "Principal": who,
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [f"{root}{landing}*"]}},
        },
        {
            "Sid": f"Council{region}ReadsOwnReceipts",
            "Effect": "Allow",
            "Principal": who,
            "Action": ["s3:GetObject"],
            "Resource": [_objects(bucket, root, receipts)],
        },
        {
            "Sid": f"Council{region}WritesNothingElse",
            "Effect": "Deny",
            "Principal": who,
            "Action": WRITE_ACTIONS,
            "NotResource": [_objects(bucket, root, landing)],
        },
        {
            "Sid": f"Council{region}WritesNoReceipts",
            "Effect": "Deny",
            "Principal": who,
            "Action": WRITE_ACTIONS,
            "Resource": [_objects(bucket, root, receipts)],
        },
    ]


def reader_statements(bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    root = _root(prefix)
    who = _principal(READER_USER)
    return [
        {
            "Sid": "ReaderReadsPublished",
            "Effect": "Allow",
            "Principal": who,
            "Action": ["s3:GetObject"],
            "Resource": [_objects(bucket, root, p) for p in READER_PREFIXES],
        },
        {
            "Sid": "ReaderListsPublished",
            "Effect": "Allow",
            "Principal": who,
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [f"{root}{p}*" for p in READER_PREFIXES]}},
        },
        {
            "Sid": "ReaderWritesNothing",
            "Effect": "Deny",
            "Principal": who,
            "Action": WRITE_ACTIONS,
            "Resource": [f"arn:aws:s3:::{bucket}/*"],
        },
    ]


def pipeline_statements(bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    root = _root(prefix)
    who = _principal(PIPELINE_USER)
    return [
        {
            "Sid": "PipelineUsesTheRegistryRoot",
            "Effect": "Allow",
            "Principal": who,
            "Action": [
                "s3:GetObject", "s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject",
                "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
            ],
            "Resource": [_objects(bucket, root)],
        },
        {
            "Sid": "PipelineListsTheBucket",
            "Effect": "Allow",
            "Principal": who,
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
        },
    ]


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": statements}


def policy_files(
    regions: list[str], bucket: str = DEFAULT_BUCKET, prefix: str = ""
) -> dict[str, dict[str, Any]]:
    """File name -> policy document: one per council, reader and pipeline, and the bucket
    policy (all of them in one document), which is what gets applied to the bucket."""
    files = {f"council-{r}.json": _document(council_statements(r, bucket, prefix)) for r in regions}
    files["reader.json"] = _document(reader_statements(bucket, prefix))
    files["pipeline.json"] = _document(pipeline_statements(bucket, prefix))
    files["bucket-policy.json"] = _document(
        [s for doc in files.values() for s in doc["Statement"]]
    )
    return files


def bucket_policy(regions: list[str], bucket: str, prefix: str = "") -> dict[str, Any]:
    """The one document to apply with ``PutBucketPolicy``."""
    return policy_files(regions, bucket, prefix)["bucket-policy.json"]


def configured_regions(config_dir: Path = PROJECT_ROOT / "config") -> list[str]:
    """Region codes of ``regions.yaml``, through the registry's own validated loader."""
    return list(load_regions(config_dir).regions)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--prefix", default="", help="registry root inside the bucket")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)

    files = policy_files(configured_regions(), args.bucket, args.prefix)
    stale = [
        name for name, doc in files.items()
        if not (args.out / name).is_file() or (args.out / name).read_text() != render(doc)
    ]
    known = {p.name for p in args.out.glob("*.json")}
    extra = sorted(known - set(files))
    if args.check:
        for name in stale:
            print(f"out of date: {args.out / name}", file=sys.stderr)
        for name in extra:
            print(f"no longer generated: {args.out / name}", file=sys.stderr)
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out / name).write_text(render(files[name]))
    for name in extra:
        (args.out / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
