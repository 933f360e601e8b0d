"""`pip install yrd-registry` without extras: the snapshot reader alone. It installs none of the
pipeline's packages, stays small, its `registry` command says what to install, and the README's
app-developer snippets run in it against a published snapshot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from staged_rows import AS_OF, merchant, stage_batch, stage_three_regions, uscc

from registry.config.settings import PROJECT_ROOT, Settings
from registry.publish import publish_snapshot
from registry.storage import LocalStorage

pytestmark = pytest.mark.slow

README_SECTION = "## For app developers"
# Only the pipeline extra installs these; the reader must come without them.
PIPELINE_ONLY = ("prefect", "great-expectations", "pyarrow", "pandas")
READER_NEEDS = ("polars", "pydantic", "boto3")
MAX_SITE_PACKAGES_MB = 300
# What the snippets name and the test replaces with its own snapshot's: a USCC, a snapshot id.
_USCC_LITERAL = re.compile(r'"[0-9A-Z]{18}"')
_SNAPSHOT_ID_LITERAL = re.compile(r'"\d{8}T\d{12}Z-[0-9a-f]{8}"')
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class LightVenv:
    root: Path
    python: Path
    install_seconds: float
    venv_mb: float
    site_packages_mb: float
    packages: dict[str, str]


def _env() -> dict[str, str]:
    """This process's environment (PIP_* included: they name the package mirrors), without
    anything that would let the venv import the checkout instead of what it installed."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(var, None)
    return env


def _megabytes(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def _run(args: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False,
                          env=kwargs.pop("env", _env()), **kwargs)


def _pip(python: Path, *args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """This environment's pip, acting on the venv of ``python``: the venv needs no pip of its
    own (one install less per run, and its size is what the project brought)."""
    return _run([sys.executable, "-m", "pip", "--python", python, *args], timeout=timeout)


# The distributions a venv's interpreter sees, with their versions, as JSON.
_DISTRIBUTIONS = ("import json, importlib.metadata as m; print(json.dumps("
                  "{d.metadata['Name']: d.version for d in m.distributions()}))")


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> LightVenv:
    """A fresh venv without pip, with the project installed into it from a copy of its source,
    no extras, no -e, from a cold pip cache; measured before any test adds to it."""
    root = tmp_path_factory.mktemp("light")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT_ROOT / name, source / name)
    for package in ("registry", "flows"):
        shutil.copytree(PROJECT_ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=300)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    started = time.monotonic()
    installed = _pip(python, "install", "--quiet", "--no-cache-dir", source, timeout=900)
    seconds = time.monotonic() - started
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = _run([python, "-c", _DISTRIBUTIONS], timeout=120)
    assert listed.returncode == 0, listed.stderr
    packages = {re.sub(r"[-_.]+", "-", name).lower(): v
                for name, v in json.loads(listed.stdout).items()}
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    return LightVenv(root=root, python=python, install_seconds=seconds,
                     venv_mb=_megabytes(venv), site_packages_mb=_megabytes(site_packages),
                     packages=packages)


def app_snippets(readme: str) -> list[str]:
    """The python blocks of the README's app-developer section, in order."""
    start = readme.index(f"\n{README_SECTION}\n")
    end = readme.find("\n## ", start + 1)
    blocks = _PYTHON_BLOCK.findall(readme[start:end if end != -1 else None])
    assert blocks, f"no python blocks under {README_SECTION!r}"
    return blocks


def test_the_reader_installs_alone_and_small(light_venv: LightVenv, record_property) -> None:
    # A string: numeric properties are summed as reliability tallies (tests/reliability_tally.py).
    record_property("light_install", f"site-packages {light_venv.site_packages_mb:.0f} MB, "
                    f"venv {light_venv.venv_mb:.0f} MB, pip install "
                    f"{light_venv.install_seconds:.1f} s")
    assert not [p for p in PIPELINE_ONLY if p in light_venv.packages], light_venv.packages
    assert all(p in light_venv.packages for p in READER_NEEDS), light_venv.packages
    assert "yrd-registry" in light_venv.packages
    assert light_venv.site_packages_mb <= MAX_SITE_PACKAGES_MB, (
        f"site-packages is {light_venv.site_packages_mb:.0f} MB "
        f"(venv {light_venv.venv_mb:.0f} MB, installed in {light_venv.install_seconds:.0f} s): "
        f"{sorted(light_venv.packages)}")


def test_the_command_says_what_to_install(light_venv: LightVenv) -> None:
    result = _run([light_venv.python.parent / "registry", "snapshots"], timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "pip install 'yrd-registry[pipeline]'" in line
    assert "命令行" in line and "command-line" in line


_DRIVER = """\
import json
import sys

import registry

# The installed copy, not the checkout.
assert "site-packages" in registry.__file__, registry.__file__
namespace = {"__name__": "__main__"}
for number, block in enumerate(json.load(open(sys.argv[1], encoding="utf-8")), 1):
    print(f"-- README block {number}", flush=True)
    exec(compile(block, f"README {sys.argv[2]!r} block {number}", "exec"), namespace)
"""


def test_the_readme_snippets_run_on_the_reader_alone(
    light_venv: LightVenv, tmp_path: Path, settings: Settings
) -> None:
    """In order, in one namespace, as an app would run them, against two published snapshots.
    DuckDB is the app's own choice, not the reader's: it is installed into the venv after the
    venv was measured."""
    storage = LocalStorage(tmp_path / "registry-data")
    stage_three_regions(storage)
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    stage_batch(storage, "merchants", "ZJ", "20261201T000000Z-zj9",
                [merchant(filing_id="ZJ-2", uscc=uscc("33", 2), city="宁波")])
    second = publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=30))

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = app_snippets(readme)
    text = "\n".join(blocks)
    assert len(_USCC_LITERAL.findall(text)) == 1 and len(_SNAPSHOT_ID_LITERAL.findall(text)) == 1
    looked_up = uscc("31", 1)
    blocks = [_SNAPSHOT_ID_LITERAL.sub(f'"{first.snapshot_id}"',
                                       _USCC_LITERAL.sub(f'"{looked_up}"', block))
              for block in blocks]
    if any("import duckdb" in block for block in blocks):
        added = _pip(light_venv.python, "install", "--quiet", f"duckdb=={version('duckdb')}",
                     timeout=600)
        assert added.returncode == 0, added.stdout + added.stderr

    (tmp_path / "blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
    (tmp_path / "driver.py").write_text(_DRIVER, encoding="utf-8")
    env = {**_env(), "REGISTRY_STORAGE_URI": storage.root_uri}
    result = _run([light_venv.python, tmp_path / "driver.py", tmp_path / "blocks.json",
                   README_SECTION], cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert second.snapshot_id in out  # opened the latest
    assert "上海进口商品有限公司" in out  # the merchant looked up
    assert uscc("33", 2) in out and "added" in out  # the change since the first snapshot
