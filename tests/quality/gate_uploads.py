"""Small council uploads with valid codes, for driving the batch gate through ingestion."""

from __future__ import annotations

from council_world import valid_uscc

from registry.storage import Storage

MERCHANT_HEADER = ("Filing ID,USCC,Merchant Name,Program,City,District,Address,Categories,"
                   "Origin Countries,Chinese Label,Traceable,No Reason Return 7d,"
                   "Offline No Reason Return,Advance Compensation,Valid From,Valid Until,Status")
INSPECTION_HEADER = "检测编号,统一社会信用代码,样品名称,检测日期,检测结论,严重程度"


def merchants_csv(n: int, *, start: int = 0, empty_districts: int = 0,
                  valid_from: str = "2024-01-01", suspended: int = 0) -> bytes:
    """``n`` valid Shanghai filings; the first ``empty_districts`` leave district empty, and
    the first ``suspended`` are suspended (the others active)."""
    lines = [MERCHANT_HEADER]
    for i in range(start, start + n):
        d = "" if i - start < empty_districts else "静安区"
        status = "suspended" if i - start < suspended else "active"
        lines.append(
            f"SH-{i:04d},{valid_uscc('31', i + 1)},上海进口商品{i}有限公司,imported_goods,上海,{d},"
            f"南京西路{i}号,food,FR,Y,Y,Y,Y,Y,{valid_from},2027-12-31,{status}"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def inspections_csv(results: list[str], *, tested_on: str = "2024-04-01") -> bytes:
    """One Anhui inspection per entry of ``results`` (pass / fail, failures minor)."""
    lines = [INSPECTION_HEADER]
    for i, result in enumerate(results):
        severity = "一般" if result == "fail" else ""
        lines.append(f"AH-T-{i:04d},{valid_uscc('34', i + 1)},进口奶粉,{tested_on},{result},"
                     f"{severity}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def land(storage: Storage, key: str, data: bytes) -> str:
    storage.write_bytes(key, data)
    return key
