"""The ``mediasoup-client`` command: produce to and consume from a mediasoup room.

Outside the library core (the core never imports it); needs the ``cli`` extra (rich, matplotlib).
"""
