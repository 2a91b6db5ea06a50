"""Running cells: booting or restoring guests, running their steps within
deadlines, writing results and logs, locally or on a Dask cluster.
"""
