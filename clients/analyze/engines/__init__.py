"""Where ``emotiond analyze`` runs its work units: this machine's cores, or a Dask cluster."""
