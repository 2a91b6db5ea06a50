"""Numbers into verdicts: bootstrap statistics, the comparison of kernels and
runs, and the diff of test outcomes between runs. Pure functions of results.
"""
