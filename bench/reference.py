"""The reference pipeline: the straightforward ingest a competent engineer writes first.

pandas reads each upload (all text, the right encoding, the title row skipped), headers are
mapped through the contracts' aliases, values are typed with vectorised pandas where pandas
offers it, python-stdnum checks every USCC (row by row: that is its API), Great Expectations
validates the rows with expectations equivalent to the contracts (result format COMPLETE, so
that the failing rows are known), and pandas writes the accepted and the rejected rows as
Parquet. It checks what the registry's ingest checks, so both reject the same rows; the
benchmark records both counts next to each other.

What it leaves out, in its favour: archiving, the ledger, lineage columns, receipts, the batch
gate and everything after ingestion.
"""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from stdnum.cn import uscc as stdnum_uscc

from registry.config.contracts import (
    Contract,
    header_key,
    load_contracts,
    load_vocabulary,
    value_key,
)
from registry.config.regions import RegionConfig, city_key, load_regions
from registry.config.settings import Settings
from registry.demo.samples import SampleFile

_DATE = r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$"
_SERIAL = r"^\d{5}$"
_PHONE = r"^(?:\+?86-?)?(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(?:-\d{1,6})?|[48]00-?\d{3}-?\d{4})$"
_NUMBER = r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$"
_SEPARATORS = r"[、;,/]"


def _read(sample: SampleFile) -> pd.DataFrame:
    if sample.format == "csv-gb18030":
        return pd.read_csv(sample.path, dtype=str, encoding="gb18030", skiprows=1,
                           keep_default_na=False)
    if sample.format == "csv-bom":
        return pd.read_csv(sample.path, dtype=str, encoding="utf-8-sig", sep=";",
                           keep_default_na=False)
    return pd.read_csv(sample.path, dtype=str, encoding="utf-8", keep_default_na=False)


def _key(text: pd.Series) -> pd.Series:
    return text.str.lower().str.replace(r"\s+", "", regex=True)


def _dates(text: pd.Series) -> pd.Series:
    parts = text.str.extract(_DATE)
    iso = pd.to_datetime(parts[0] + "-" + parts[1] + "-" + parts[2], format="%Y-%m-%d",
                         errors="coerce")
    serial = pd.to_numeric(text.where(text.str.match(_SERIAL, na=False)), errors="coerce")
    return iso.fillna(pd.to_datetime(serial, unit="D", origin="1899-12-30"))


class _Checks:
    """Per dataset: how to type the text, and the equivalent Great Expectations suite."""

    def __init__(self, gx: Any, contract: Contract, vocabulary: Any, regions: RegionConfig,
                 region: str, today: date):
        self.contract, self.vocabulary, self.region = contract, vocabulary, region
        self.cities = {k for k, (r, _) in regions.city_index().items() if r == region}
        self.today = pd.Timestamp(today)
        e = gx.expectations
        expectations = []
        for col in contract.columns:
            name = col.name
            if col.required:
                expectations.append(e.ExpectColumnValuesToNotBeNull(column=name))
            if col.max_length:
                expectations.append(e.ExpectColumnValueLengthsToBeBetween(
                    column=name, max_value=col.max_length))
            if col.dtype in ("enum", "boolean", "city"):
                allowed = {"enum": lambda c=col: list(c.value_index()),
                           "boolean": lambda: list(vocabulary.booleans),
                           "city": lambda: sorted(self.cities)}[col.dtype]()
                expectations.append(e.ExpectColumnValuesToBeInSet(column=name + "__key",
                                                                  value_set=allowed))
            if col.dtype in ("date", "float", "uscc", "country_list", "list"):
                expectations.append(e.ExpectColumnValuesToBeInSet(column=name + "__ok",
                                                                  value_set=[True]))
            if col.dtype == "phone":
                expectations.append(e.ExpectColumnValuesToMatchRegex(column=name,
                                                                    regex=_PHONE))
            if col.min is not None or col.max is not None:
                expectations.append(e.ExpectColumnValuesToBeBetween(
                    column=name + "__value", min_value=col.min, max_value=col.max))
            if col.not_future:
                expectations.append(e.ExpectColumnValuesToBeBetween(
                    column=name + "__value", max_value=self.today))
            if col.not_before:
                expectations.append(e.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=name + "__value", column_B=col.not_before + "__value",
                    or_equal=True, ignore_row_if="either_value_is_missing"))
            if col.required_when:
                expectations.append(e.ExpectColumnValuesToBeInSet(
                    column=name + "__required_ok", value_set=[True]))
        keys = [k for k in contract.natural_key if k != "region"]
        expectations.append(e.ExpectCompoundColumnsToBeUnique(column_list=keys) if len(keys) > 1
                            else e.ExpectColumnValuesToBeUnique(column=keys[0]))
        self.expectations = expectations

    def typed(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The text with derived columns the expectations read: ``__key`` (matching key),
        ``__value`` (typed), ``__ok`` (present and interpretable, or absent)."""
        frame = raw.copy()
        for col in self.contract.columns:
            name = col.name
            if name not in frame:
                frame[name] = None
            text = frame[name].str.strip().replace("", None)
            frame[name] = text
            if col.dtype in ("enum", "boolean", "city"):
                keys = _key(text) if col.dtype != "city" else text.map(
                    lambda v: None if v is None else city_key(v))
                frame[name + "__key"] = keys
                if col.dtype == "enum":
                    frame[name + "__value"] = keys.map(col.value_index())
            elif col.dtype == "date":
                frame[name + "__value"] = _dates(text)
                frame[name + "__ok"] = text.isna() | frame[name + "__value"].notna()
            elif col.dtype == "float":
                number = text.where(text.str.match(_NUMBER, na=False)).str.replace(",", "")
                frame[name + "__value"] = pd.to_numeric(number, errors="coerce")
                frame[name + "__ok"] = text.isna() | frame[name + "__value"].notna()
            elif col.dtype == "uscc":
                frame[name + "__ok"] = text.map(
                    lambda v: v is None or stdnum_uscc.is_valid(v))
            elif col.dtype in ("list", "country_list"):
                items = text.str.split(_SEPARATORS)
                countries = self.vocabulary.countries

                def ok(values, countries=countries, country=col.dtype == "country_list"):
                    if not isinstance(values, list):
                        return True
                    values = [v.strip() for v in values if v.strip()]
                    return bool(values) and (not country or all(
                        value_key(v) in countries for v in values))

                frame[name + "__ok"] = items.map(ok)
        for col in self.contract.columns:
            if col.required_when:
                other = col.required_when
                frame[col.name + "__required_ok"] = frame[col.name].notna() | (
                    frame[other.column + "__value"] != other.equals)
        return frame


def reference_ingest(files: list[SampleFile], out: Path, *, today: date) -> dict[str, Any]:
    """Ingest ``files`` the straightforward way into ``out/{staged,quarantine}/``. Returns the
    rows read, accepted and rejected, and the seconds spent in Great Expectations and in
    python-stdnum."""
    import great_expectations as gx

    settings = Settings(_env_file=None)
    contracts = load_contracts(settings.schemas_dir)
    vocabulary = load_vocabulary(settings.schemas_dir)
    regions = load_regions(settings.config_dir)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batches = context.data_sources.add_pandas("reference").add_dataframe_asset("upload") \
        .add_batch_definition_whole_dataframe("whole")
    checks: dict[tuple[str, str], _Checks] = {}
    suites: dict[tuple[str, str], Any] = {}
    totals = {"rows": 0, "accepted": 0, "rejected": 0, "gx_s": 0.0, "typing_s": 0.0}
    for folder in ("staged", "quarantine"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for sample in files:
        contract = contracts[sample.dataset]
        where = (sample.dataset, sample.region)
        if where not in checks:
            checks[where] = _Checks(gx, contract, vocabulary, regions, sample.region, today)
            suites[where] = context.suites.add(gx.ExpectationSuite(
                name=f"{sample.dataset}-{sample.region}",
                expectations=checks[where].expectations))
        raw = _read(sample)
        headers = contract.header_index()
        raw = raw.rename(columns={h: headers.get(header_key(h), h) for h in raw.columns})
        started = time.perf_counter()
        frame = checks[where].typed(raw)
        totals["typing_s"] += time.perf_counter() - started
        started = time.perf_counter()
        result = batches.get_batch(batch_parameters={"dataframe": frame}).validate(
            suites[where], result_format="COMPLETE")
        totals["gx_s"] += time.perf_counter() - started
        bad: set[int] = set()
        for outcome in result.results:
            if not outcome.success:
                bad.update(outcome.result.get("unexpected_index_list") or [])
        rejected = frame.index.isin(sorted(bad))
        keep = [c.name for c in contract.columns]
        accepted = frame.loc[~rejected, keep].assign(region=sample.region)
        stem = re.sub(r"\W", "_", sample.path.stem)
        accepted.to_parquet(out / "staged" / f"{stem}.parquet", index=False)
        raw.loc[rejected].assign(region=sample.region).to_parquet(
            out / "quarantine" / f"{stem}.parquet", index=False)
        totals["rows"] += len(frame)
        totals["accepted"] += int((~rejected).sum())
        totals["rejected"] += int(rejected.sum())
    return totals
