"""Reading a search: the :class:`Result` of a run and what is made from it (reports, exports,
plots, progress)."""
