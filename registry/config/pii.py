"""What personal data looks like in free text, and how it is shown once found
(docs/architecture.md, "Personal data").

The one owner of the patterns. Ingestion rejects a row whose ordinary text matches one
(``PII_IN_TEXT``, :mod:`registry.ingest.validation`), the publication guard refuses a snapshot that
still carries one (:func:`registry.publish.pii_findings`), and the registry suites receive them
as suite parameters (:func:`registry.quality.suites.registry_suite_parameters`).

Columns that are personal data by design are flagged ``pii: true`` in the contracts
(``schemas/*.yaml``): validated, hidden in receipts, and neither staged nor quarantined. Only
the raw archive of the upload keeps them, as long as the bucket's lifecycle rule says.
"""

from __future__ import annotations

import polars as pl

# In the syntax both polars (Rust regex) and the registry suites (Python re, on pandas) read,
# so without look-around: a mainland mobile number, optionally +86 and separators, not part of
# a longer digit run; an 18-character resident ID with a plausible birth date.
MOBILE_PATTERN = r"(?:^|[^0-9])(?:\+?86[- ]?)?1[3-9][0-9][- ]?[0-9]{4}[- ]?[0-9]{4}(?:[^0-9]|$)"
RESIDENT_ID_PATTERN = (
    r"(?:^|[^0-9])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"[0-9]{3}[0-9Xx](?:[^0-9A-Za-z]|$)"
)
# What each pattern finds, as the publication guard names it.
PATTERNS = {"mobile_number": MOBILE_PATTERN, "resident_id": RESIDENT_ID_PATTERN}
_ANY_PATTERN = "|".join(f"(?:{pattern})" for pattern in PATTERNS.values())
# A run of eight or more digits (spaces and hyphens allowed inside): every mobile and resident
# ID number the patterns find is one. Masking keeps its first three and last four characters.
_LONG_DIGIT_RUN = r"([0-9]{3})[- ]?[0-9][0-9 -]*([0-9]{3}[0-9Xx])"


def looks_personal(text: pl.Expr) -> pl.Expr:
    """True where the string ``text`` holds a mobile or resident ID number (null where null)."""
    return text.str.contains(_ANY_PATTERN)


def masked(text: pl.Expr) -> pl.Expr:
    """``text`` with each long digit run masked: ``张三 13912345678`` -> ``张三 139****5678``,
    ``11010519491231002X`` -> ``110****002X``. Short numbers (a house number, a year) stay."""
    return text.str.replace_all(_LONG_DIGIT_RUN, "${1}****${2}")
