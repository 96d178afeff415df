"""Helpers and fixtures shared by the test modules: real daemons, real sockets, real displays."""
