"""Every patch of another library's internals, one module per library. Each names the library
versions it was written for and checks the installed version when it is applied, raising
:class:`~registry._compat.versions.IncompatibleVersion` outside them (:mod:`.versions`).

- :mod:`.gx` (great-expectations >=1.24,<1.25): the pandas batch fingerprint turned off
  (``HASH_THRESHOLD``); one Jinja bytecode cache shared by every Data Docs view
  (``DefaultJinjaView``); an expectation's configuration built, and turned back into an
  expectation, once per dependency lookup; metric ids of plain kwargs written without GX's
  conversion (``IDDict.to_id``); rows filtered by a condition once per run; the execution
  engine's copy of a batch let go after a run; one validation run at a time (GX's
  suite-parameter parser is not thread-safe); the import without what the registry never uses.
- :mod:`.pandera` (pandera >=0.35,<0.36): ``pandera.polars`` imported with its data-synthesis
  strategies loaded without hypothesis, a test tool it imports whenever installed.
- :mod:`.imports`: importing a library with some modules hidden or loaded on first use, the
  mechanism of the two items above.
- :mod:`.opencc` (opencc >=1.4,<1.5): the C API of the package's extension module, called with
  ctypes so a conversion releases the GIL; the values of its ``.ocd2`` dictionaries, read by
  the file's layout.

Nothing here imports the rest of the registry.
"""
