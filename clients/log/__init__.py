"""``emotiond log``: every result appended to rotating files, and ``log summary``."""
