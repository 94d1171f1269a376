"""Population-based training (PBT; Jaderberg et al., 2017): hyperparameters that change
during training.

A worker trains one *member* at a time, in *segments* of ``interval`` steps. Each segment is
one evaluation (one record): it starts from a saved training (``trial.restore``), trains
``interval`` steps with its configuration and pauses, saving it (``trial.save``). Between
segments the worker compares its member's last value with those of its island's members
(:mod:`propagator.engine.population`): in the worst ``quantile`` it *exploits*, continuing
from the saved training of a member in the best ``quantile`` with that member's
configuration, *explored* (:mod:`.explore`: its ``mutable`` parameters perturbed or drawn
anew); else it goes on with its own (:mod:`propagator.engine.members`). A member that
trains to its end (its objective returns without being paused) is complete; the worker
then starts a new member, from a configuration its island's search strategy proposes.

Records keep the lineage: ``parent``, the segment whose saved training a segment started
from, and ``member``, the first segment of its member (:mod:`.lineage` walks it back into a
schedule).
"""

from .explore import explore
from .lineage import Lineage, schedule
from .spec import PBT, make_pbt

__all__ = ["PBT", "Lineage", "explore", "make_pbt", "schedule"]
