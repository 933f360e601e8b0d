"""``import great_expectations`` through the registry leaves out what no registry suite uses
(registry._compat.gx): SQLAlchemy is not imported, scipy.stats and altair load on first use."""

from __future__ import annotations

import json
import subprocess
import sys

from registry.config.settings import PROJECT_ROOT


def _modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_gate_imports_neither_sqlalchemy_nor_scipy_stats_nor_altair() -> None:
    loaded = _modules_after("from registry._compat.gx import patched\npatched()")
    assert "great_expectations" in loaded
    assert not {m for m in loaded if m.split(".")[0] == "sqlalchemy"}
    # Bound lazily: the module object exists, none of its own submodules was loaded.
    assert "scipy.stats._stats_py" not in loaded
    assert "altair.vegalite" not in loaded


def test_what_was_left_out_loads_when_used() -> None:
    loaded = _modules_after(
        "from registry._compat.gx import patched\npatched()\n"
        "from scipy import stats\nassert stats.entropy([0.5, 0.5]) > 0\n"
        "import altair\nassert altair.Chart\nimport sqlalchemy\n")
    assert {"scipy.stats._stats_py", "altair.vegalite", "sqlalchemy"} <= loaded


def test_upload_tasks_asking_at_once_import_gx_once() -> None:
    # The ingest's upload tasks run in threads, and the first gates of a run ask for GX at the
    # same moment (`registry demo` on a fresh process): each must get it, patched once.
    loaded = _modules_after(
        "import threading\n"
        "from registry._compat.gx import patched\n"
        "start, got, failed = threading.Barrier(4), [], []\n"
        "def ask():\n"
        "    start.wait()\n"
        "    try:\n"
        "        got.append(patched())\n"
        "    except BaseException as error:\n"
        "        failed.append(repr(error)[:200])\n"
        "threads = [threading.Thread(target=ask) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "assert not failed, failed\n"
        "assert len(got) == 4 and len({id(m) for m in got}) == 1\n")
    assert "great_expectations" in loaded
