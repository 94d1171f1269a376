"""The engine: workers and islands over MPI (leaders breed, evaluate and share records;
followers evaluate), the objective's trial handle, records on the wire, and run-wide counters."""
