"""The web console: every camera live and annotated in a browser, recent events, stats and photo upload,
served by aiohttp as one more client of the results bus (``emotiond web``)."""
