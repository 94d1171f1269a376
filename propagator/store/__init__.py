"""The run store: a run directory of HDF5 files plus kill-9-safe journals (see
:mod:`propagator.store.run_store` for the contract, :mod:`propagator.store.hdf5` for the
layout). h5py is imported only here."""

from .load import load, read
from .run_store import META, StoredRun, WorkerSink, read_run, worker_paths

__all__ = ["META", "StoredRun", "WorkerSink", "load", "read", "read_run", "worker_paths"]
