"""Ingest: read council uploads, normalise, validate, stage, and write receipts."""
