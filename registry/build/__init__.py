"""Registry build: pure transforms from the staged rows in effect to the published tables.

Which staged rows count is the ledger's rule (:func:`registry.ledger.in_effect`), and reading
them is publication's job (:mod:`registry.publish.inputs`). Per natural key, the row of the
latest batch in ledger order (when its upload landed, never when it was ingested) wins:
:data:`~registry.build.columns.ORDER_COLUMN` carries that order.

- :mod:`~registry.build.columns`: the staged columns read, the published columns per contract;
- :mod:`~registry.build.merchants`: latest rows, valid filings merged per USCC, windowed counts;
- :mod:`~registry.build.products`: gift products and each merchant's gift score;
- :mod:`~registry.build.scores`: the explainable scores, grade and trusted flag;
- :mod:`~registry.build.complaints`: the joint complaint analysis (``complaints_summary``);
- :mod:`~registry.build.tables`: the merchants, products and complaints summary tables;
- :mod:`~registry.build.changes`: listing dates carried from the previous snapshot (and the
  delta against it, owned by :mod:`registry.snapshot.delta` and re-exported).

Nothing here reads storage or settings: every function takes frames and config values.
"""
