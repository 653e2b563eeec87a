"""Media sources and helpers that are not part of the core API (synthetic test sources)."""
