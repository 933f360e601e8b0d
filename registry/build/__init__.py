"""Registry build: pure transforms from the staged rows in effect to the published tables.

Which staged rows count is the ledger's rule (:func:`registry.ledger.in_effect`), and reading
them is publication's job (:mod:`registry.publish.inputs`). Per natural key, the row of the
latest batch in ledger order (when its upload landed, never when it was ingested) wins:
:data:`~registry.build.columns.ORDER_COLUMN` carries that order.

- :mod:`~registry.build.columns`: the staged columns read, the published columns and versions;
- :mod:`~registry.build.merchants`: latest rows, valid filings merged per USCC, windowed counts;
- :mod:`~registry.build.products`: gift products and each merchant's gift score;
- :mod:`~registry.build.scores`: the explainable scores, grade and trusted flag;
- :mod:`~registry.build.tables`: the merchants and products tables;
- :mod:`~registry.build.changes`: the delta against the previous snapshot and listing dates.

Nothing here reads storage or settings: every function takes frames and config values.
"""
