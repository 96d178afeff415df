"""emotiond workers package."""
