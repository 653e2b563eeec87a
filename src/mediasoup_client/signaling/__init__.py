"""Signaling outside the library core: protoo (mediasoup-demo's protocol) and the local SFU.

The core (Device, Transport, ...) never imports this package: applications bring their own
signaling; this is the one the project's CLI, benchmarks and tests use.
"""
