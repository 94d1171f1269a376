"""A working objective for the bad search files whose mistake lies elsewhere."""


def objective(params, trial):
    return sum(v for v in params.values() if isinstance(v, (int, float)))
