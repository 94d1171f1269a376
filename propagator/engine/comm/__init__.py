"""MPI plumbing of the engine: communicators, the ticket counter, the record mailbox.

This package is the only place that imports mpi4py for the search loop.
"""
