"""The shared base of every stage: typed settings, the results layout, IO, job plumbing.

Imports no stage (``extraction``, ``analysis``, ...) and never torch: the Snakefile imports it
at parse time, and every job imports it.
"""
