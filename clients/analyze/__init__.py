"""``emotiond analyze``: photos and videos through the pipeline, on all cores or a Dask cluster."""
