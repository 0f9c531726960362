"""Tasks and data builders that the methods are tried on (base layer): sequence tasks, continual-learning task streams.

Data sets themselves are in :mod:`nnstudies.data`; the builders here turn them (or generators) into tasks.
"""
