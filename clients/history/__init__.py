"""The emotion history: every track, track event, thinned samples and per-minute aggregates kept in a database.

One writer process (``writer.py``, started by ``emotiond run`` as the ``history`` role) subscribes to the bus and
writes in batched transactions; readers (``emotiond history``, the web API and console) open the database
read-only through ``store.HistoryReader`` and ask ``queries``. SQLite (WAL, in the state folder) is the default
engine and PostgreSQL the one for several hosts; both go through the same SQLAlchemy Core code (``schema.py``).
"""
