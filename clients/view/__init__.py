"""``emotiond view``: the live OpenCV overlay window."""
