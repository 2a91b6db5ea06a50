"""The host machine: the one subprocess path (proc), the Debian packages the lab
needs and their probes, host facts (accelerator, cores), and the cache on disk:
its entries, locks, atomic writes and its bound (gc).
"""
