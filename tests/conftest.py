"""Fixtures for every test module; they live in tests/support."""

from support.clients import node_example, xvfb  # noqa: F401
from support.daemon import default_model, events, start_daemon, videos, watch  # noqa: F401
