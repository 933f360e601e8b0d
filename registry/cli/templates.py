"""What a council clerk fills in: `registry template` (a blank template to fill in) and
`registry columns` (the headers the registry accepts), both from the dataset's contract."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from registry.cli.errors import UsageProblem

if TYPE_CHECKING:
    from rich.console import Console

    from registry.ingest.templates import DatasetTemplate


class TemplateFormat(enum.StrEnum):
    xlsx = "xlsx"
    csv = "csv"


DatasetArgument = Annotated[
    str, typer.Argument(metavar="DATASET",
                        help="merchants, complaints, inspections or gift_evaluations.")
]
RegionOption = Annotated[
    str | None,
    typer.Option("--region", help="Council (SH, JS, ...): its cities and the columns it must "
                 "fill. Without it, the template suits any region."),
]


def template(
    dataset: DatasetArgument,
    region: RegionOption = None,
    fmt: Annotated[TemplateFormat, typer.Option("--format", help="xlsx: the workbook with "
                   "dropdowns and 填表说明; csv: the header row (UTF-8 with BOM).")
                   ] = TemplateFormat.xlsx,
    output: Annotated[Path | None, typer.Option("-o", "--output", dir_okay=False,
                      help="Where to write it; default ./{dataset}_template_{region}.{format}.")
                      ] = None,
) -> None:
    """Write a blank template of DATASET for a council clerk to fill in, and print its path.

    The xlsx has the data sheet first (Chinese headers, required ones marked *, the English
    name in each header's comment, dropdowns for listed values, date and number formats) and a
    填表说明 sheet: every column, whether it is required, its meaning and an example."""
    from registry.ingest.templates import template_csv, template_xlsx

    found = _dataset_template(dataset, region)
    path = output or Path(found.file_name(fmt.value))
    path.write_bytes(template_xlsx(found) if fmt is TemplateFormat.xlsx else template_csv(found))
    typer.echo(str(path))


def columns(
    dataset: DatasetArgument,
    region: RegionOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the columns as JSON.")] = False,
) -> None:
    """Print the headers DATASET accepts: each column's Chinese and English header, every
    alias, whether it is required, its type and format, and the values it takes."""
    from rich.console import Console

    from registry.ingest.templates import columns_as_json

    found = _dataset_template(dataset, region)
    if as_json:
        typer.echo(json.dumps(columns_as_json(found), ensure_ascii=False, indent=2))
        return
    console = Console()
    if console.is_terminal:
        _print_table(console, found)
    else:
        typer.echo(_plain_columns(found))


def _dataset_template(dataset: str, region: str | None) -> DatasetTemplate:
    from registry.config.contracts import load_contracts, load_vocabulary
    from registry.config.quality import load_quality_config
    from registry.config.regions import load_regions
    from registry.config.settings import load_settings
    from registry.ingest.templates import UnknownName, dataset_template

    settings = load_settings()
    try:
        return dataset_template(
            load_contracts(settings.schemas_dir), load_vocabulary(settings.schemas_dir),
            load_regions(settings.config_dir), load_quality_config(settings.config_dir),
            dataset, region,
        )
    except UnknownName as exc:
        raise UsageProblem(exc.zh, exc.en) from None


def _title(found: DatasetTemplate) -> list[str]:
    contract, region = found.contract, found.region
    place = f" · {region.name_zh} {region.name_en} ({region.code})" if region else ""
    lines = [f"{contract.title_zh} {contract.title_en} ({contract.name}, "
             f"contract v{contract.version}){place}"]
    for zh, en in found.notes:
        lines += [zh, en]
    return lines


def _ignored(found: DatasetTemplate) -> str:
    return ("忽略的表头 headers dropped without complaint: "
            + ", ".join(found.contract.ignore))


def _plain_columns(found: DatasetTemplate) -> str:
    """Plain lines for a pipe: nothing wrapped or cut, one field per line."""
    from registry.ingest.templates import values_text

    lines = _title(found)
    for column in found.columns:
        spec = column.spec
        lines += [
            "",
            f"{column.header}  {spec.name}  {column.requirement.zh} / {column.requirement.en}",
            f"  别名 aliases: {', '.join(spec.aliases)}",
            f"  类型 type: {column.format_zh} / {column.format_en}",
            f"  说明 meaning: {spec.description.zh} / {spec.description.en}",
        ]
        values = values_text(column)
        if values:
            lines.append("  可填值 values: " + "; ".join(values.splitlines()))
        lines.append(f"  示例 example: {column.example}")
    return "\n".join([*lines, "", _ignored(found)])


def _print_table(console: Console, found: DatasetTemplate) -> None:
    """A table on a terminal: every cell wraps (overflow="fold"), none is cut."""
    from rich.table import Table

    from registry.ingest.templates import values_text

    table = Table(title="\n".join(_title(found)), show_lines=True)
    for heading in ("表头 Header", "别名 Aliases", "必填 Required", "类型与格式 Type",
                    "可填值 Values", "示例 Example"):
        table.add_column(heading, overflow="fold")
    for column in found.columns:
        table.add_row(
            f"{column.header}\n{column.spec.name}",
            "\n".join(column.spec.aliases),
            f"{column.requirement.zh}\n{column.requirement.en}",
            f"{column.format_zh}\n{column.format_en}",
            values_text(column),
            column.example,
        )
    console.print(table)
    console.print(_ignored(found))
