"""Readers of what guests and kernels print: the fault catalogue (oops, KASAN,
lockdep, ...), KTAP, kmemleak reports. Pure functions of text.
"""
