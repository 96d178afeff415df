"""The ground every role stands on: wire protocol, settings, model bundle, metric names, sockets, errors.

Nothing here imports from any other emotiond folder."""
