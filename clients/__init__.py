"""emotiond clients package."""
