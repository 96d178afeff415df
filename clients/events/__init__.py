"""``emotiond events``: results as JSON lines."""
