"""Reader tests share the staged world of tests/staged_rows.py."""

from staged_rows import settings, staged

__all__ = ["settings", "staged"]
