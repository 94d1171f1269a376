"""Search files: read, validate against the schema, and resolve into one frozen
:class:`SearchFile` (the library below never sees YAML)."""

from .objectives import TRAINER_GROUP, load_objective
from .search_file import SearchFile, load, run_dir_of

__all__ = ["TRAINER_GROUP", "SearchFile", "load", "load_objective", "run_dir_of"]
