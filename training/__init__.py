"""emotiond training package."""
