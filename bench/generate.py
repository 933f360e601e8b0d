"""Benchmark inputs per tier: council CSV uploads from :mod:`registry.demo.samples`, cached.

    .venv/bin/python -m bench.generate --tier S|M|L

Tiers (rows over all regions): S 100k merchants, 400k complaints, 40k inspections, 20k gift
evaluations; M ten times that; L 10M merchants and 40M complaints (inspections and gift
evaluations ten times M as well). Files are CSV per region and dataset, in UTF-8 and in GB18030
with a title row, split into several uploads so that none comes near the upload limits
(``replace``-mode datasets are one upload: see :func:`upload_limit_bytes`).

The files and a manifest (what each file holds, how many rows the ingest must reject) are
written to ``bench/data/{tier}-seed{seed}-v{version}/`` (gitignored) once; later runs reuse them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

from registry.config.contracts import load_contracts
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.demo.samples import (
    DEFAULT_SEED,
    SAMPLES_VERSION,
    SampleFile,
    SampleSizes,
    write_sample_uploads,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
# Fixed, in the past: cached files stay valid ("not in the future") whenever they are used, and
# every run publishes as of the same day.
BENCH_TODAY = date(2026, 6, 30)
TIERS: dict[str, SampleSizes] = {
    "S": SampleSizes(100_000, 400_000, 40_000, 20_000),
    "M": SampleSizes(1_000_000, 4_000_000, 400_000, 200_000),
    "L": SampleSizes(10_000_000, 40_000_000, 4_000_000, 2_000_000),
}
# Uploads per region and dataset: about 25-100 MB of CSV each.
PARTS = {"S": 2, "M": 4, "L": 12}
FORMATS = ("csv", "csv-gb18030")
_MANIFEST = "manifest.json"


def tier_folder(tier: str, seed: int = DEFAULT_SEED) -> Path:
    return DATA / f"{tier}-seed{seed}-v{SAMPLES_VERSION}"


def tier_files(tier: str, seed: int = DEFAULT_SEED, *, log=print) -> list[SampleFile]:
    """The tier's upload files, generated on first use. Raises KeyError for an unknown tier."""
    sizes = TIERS[tier]
    folder = tier_folder(tier, seed)
    manifest = folder / _MANIFEST
    if manifest.exists():
        return [SampleFile(**{**f, "path": folder / f["path"]})
                for f in json.loads(manifest.read_text())["files"]]
    settings = Settings(_env_file=None)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log(f"generating tier {tier} ({sizes.total:,} rows) into {folder} ...")
    start = time.perf_counter()
    files = write_sample_uploads(
        partial, load_regions(settings.config_dir), load_contracts(settings.schemas_dir), sizes,
        seed=seed, today=BENCH_TODAY, formats=FORMATS, parts=PARTS[tier],
    )
    doc = {
        "tier": tier, "seed": seed, "today": BENCH_TODAY.isoformat(), "sizes": asdict(sizes),
        "generated_s": round(time.perf_counter() - start, 1),
        "files": [{**asdict(f), "path": f.path.name} for f in files],
    }
    (partial / _MANIFEST).write_text(json.dumps(doc, indent=1, default=str))
    partial.rename(folder)
    log(f"generated {len(files)} files in {doc['generated_s']} s")
    return [SampleFile(**{**asdict(f), "path": folder / f.path.name}) for f in files]


def upload_limit_bytes(files: list[SampleFile]) -> int:
    """An upload limit that admits the tier's largest file (a tier-L replace-mode list is
    ~600 MB, over the 256 MB default): a deployment with councils that large raises
    REGISTRY_MAX_UPLOAD_BYTES the same way."""
    default = Settings(_env_file=None).max_upload_bytes
    return max(default, max(f.path.stat().st_size for f in files) + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="S")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    files = tier_files(args.tier, args.seed)
    size = sum(f.path.stat().st_size for f in files)
    print(f"tier {args.tier}: {len(files)} files, {sum(f.rows for f in files):,} rows, "
          f"{size / 1e6:,.0f} MB, {sum(f.rejected for f in files):,} rows to reject")


if __name__ == "__main__":
    main()
