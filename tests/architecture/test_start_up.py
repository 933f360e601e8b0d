"""What a command pays for before it does anything: the command line starts without the
pipeline's heavy packages, and each loads only inside the work that needs it.

Each check runs in a fresh interpreter and reads ``sys.modules`` at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from registry.config.settings import PROJECT_ROOT

# Seconds each to import on a quiet two-core machine, or more.
HEAVY = ("great_expectations", "pandas", "pandera", "altair", "datacontract", "prefect",
         "scipy", "pyarrow", "polars", "boto3")


def _loaded(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages, and the registry's modules, that ``code`` has loaded."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})},
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.splitlines()[-1])
    return {m for m in modules if m.startswith("registry.")} | {m.split(".")[0] for m in modules}


def test_the_command_line_starts_without_the_pipelines_heavy_packages() -> None:
    # What `registry --help` loads, and every command before its body runs.
    loaded = _loaded("import registry.cli")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_listing_held_batches_loads_neither_the_gate_nor_its_templates() -> None:
    loaded = _loaded("from registry.quality import batch_listings, release_batch")
    assert "registry.quality.held" in loaded
    gate = loaded & {"registry.quality.runner", "registry.quality.gates",
                     "registry.quality.data_docs", "jinja2", "great_expectations", "pandas"}
    assert not gate, sorted(gate)


def test_a_run_with_nothing_to_ingest_loads_neither_the_gate_nor_pandera(tmp_path: Path) -> None:
    # GX gates a batch, pandera checks one about to be staged: with nothing pending, neither.
    loaded = _loaded(
        "import flows.pipeline\n"
        "from registry.config.settings import load_settings\n"
        "from registry.ingest.pipeline import ingest_pending\n"
        "from registry.storage import open_storage\n"
        "settings = load_settings()\n"
        "assert not ingest_pending(open_storage(settings), settings).results\n",
        env={"REGISTRY_STORAGE_URI": tmp_path.as_uri()})
    assert "registry.ingest.pipeline" in loaded
    heavy = loaded & {"great_expectations", "pandera", "pandas"}
    assert not heavy, sorted(heavy)


def test_the_publish_flow_loads_no_reader_of_council_files() -> None:
    loaded = _loaded("import flows.publish")
    ingest = loaded & {"registry.ingest.pipeline", "registry.ingest.readers", "pandera",
                       "fastexcel"}
    assert not ingest, sorted(ingest)


def test_the_ingest_flow_loads_neither_the_publisher_nor_the_report() -> None:
    loaded = _loaded("import flows.ingest")
    publish = loaded & {"registry.publish", "registry.report", "altair", "vl_convert"}
    assert not publish, sorted(publish)

