"""The lab's vocabulary, importing no other lab package: errors and their exit
codes, deadlines, the data model (arches, variants, steps, kernel builds),
results, the lab's paths, and the bounds on everything a user hands in.
"""
