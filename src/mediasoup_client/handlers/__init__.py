"""Media engines behind one small interface: a fake one for unit tests, aiortc for real media."""
