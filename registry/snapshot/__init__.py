"""Published snapshots: their formats and the reader downstream apps use."""
