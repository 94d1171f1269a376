"""Optuna's argument names for settings that exist here under another name.

A user coming from Optuna writes ``strategy: {name: tpe, n_startup_trials: 5}``; the closest
spelling among our settings (``max_trials``) would be a wrong hint, so an unknown setting is
looked up here first. A name maps to the settings it may mean, in order: Optuna reuses
``n_startup_trials`` for the TPE sampler's random start (our ``startup``) and the median
pruner's wait for enough trials (our ``warmup``); the first one the chosen strategy or pruner
has is the hint. Optuna names with no counterpart here are listed too, so that no look-alike
is suggested for them.
"""

from __future__ import annotations

from collections.abc import Collection

# field ("strategy" or "early_stopping") -> Optuna's name -> our settings it may mean
OPTUNA_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "strategy": {
        "n_startup_trials": ("startup",),  # TPESampler
        "population_size": ("population",),  # NSGAIISampler, GA samplers
        "popsize": ("population",),  # CmaEsSampler
        "sigma0": ("sigma",),  # CmaEsSampler
        "inc_popsize": ("growth",),  # CmaEsSampler's IPOP restarts
        "mutation_prob": ("mutation",),  # NSGAIISampler
        "crossover_prob": ("crossover",),  # NSGAIISampler
        "n_ei_candidates": (),
        "consider_prior": (),
        "prior_weight": (),
        "consider_endpoints": (),
        "gamma": (),
        "weights": (),
        "constant_liar": ("pending",),  # TPESampler
        "group": (),
        "x0": (),
        "restart_strategy": (),
        "with_margin": (),
        "use_separable_cma": (),
        "lr_adapt": (),
        "independent_sampler": (),
    },
    "early_stopping": {
        "n_warmup_steps": ("min_step",),  # MedianPruner, PercentilePruner
        "min_resource": ("min_step",),  # SuccessiveHalvingPruner, HyperbandPruner
        "reduction_factor": ("reduction",),  # SuccessiveHalvingPruner, HyperbandPruner
        "n_brackets": ("brackets",),  # HyperbandPruner (older Optuna)
        "n_startup_trials": ("warmup",),  # MedianPruner, PercentilePruner
        "interval_steps": (),
        "max_resource": (),
        "min_early_stopping_rate": (),
        "bootstrap_count": (),
        "percentile": (),
        "n_min_trials": (),
    },
}
# Settings of the whole search that Optuna passes to a sampler or pruner.
_SEARCH_WIDE = {"seed": "seed: N at the top level of the search file (pg.search(seed=N))"}


def optuna_hint(field: str, key: str, known: Collection[str]) -> str | None:
    """The hint for ``key``, an unknown setting of ``field`` whose settings are ``known``,
    when ``key`` is one of Optuna's argument names; ``None`` when it is not."""
    if key in _SEARCH_WIDE:
        return f"it is set for the whole search: {_SEARCH_WIDE[key]}"
    meant = OPTUNA_NAMES.get(field, {}).get(key)
    if meant is None:
        return None
    ours = next((name for name in meant if name in known), None)
    if ours is not None:
        return f"did you mean {ours!r}? (Optuna's {key} is {ours} here)"
    return f"Optuna's {key} has no counterpart here; known: {', '.join(sorted(known))}"
