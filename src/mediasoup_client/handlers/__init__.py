"""Media engines behind one small interface: the fake one for unit tests, the aiortc one for real media."""
