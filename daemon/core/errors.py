"""Errors every command reports the same way: one clear line and exit status 2."""


class UsageError(Exception):
    """A user mistake (bad flag, missing source, bad config): one clear line, exit status 2."""
