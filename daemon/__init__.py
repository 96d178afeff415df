"""emotiond daemon package."""
