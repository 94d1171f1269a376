"""``pg.Study``: ask/tell for a training loop the user owns (SPMD, as :func:`propagator.search`).

The engine is :func:`propagator.search`'s, run in a second thread whose objective hands each
candidate to the user's thread (:meth:`Study.ask`) and waits for its value
(:meth:`Study.tell`). The two threads take strict turns (:class:`.turns.Turns`): the engine
runs only inside ``ask`` and at the end of the ``with`` block, the user's code only while the
engine waits. So no two threads of a rank ever make MPI calls at once
(``MPI_THREAD_SERIALIZED`` is enough), the user's code between two asks may use MPI freely,
and the engine sees nothing the user does meanwhile. A told value therefore reaches the
engine at the next ``ask``, which records it and only then takes the next candidate: when the
user leaves the loop, no candidate is waiting to be thrown away.
"""

from .study import Study
from .trial import StudyTrial

__all__ = ["Study", "StudyTrial"]
