"""Fake credentials for the loopback moto server only.

A plain module, so that tests import them by one name: ``from conftest import ...`` resolves
to whichever of the several ``conftest`` modules pytest loaded first."""

MOTO_KEY_ID = "testing-key-id"
MOTO_SECRET = "testing-secret-key"
