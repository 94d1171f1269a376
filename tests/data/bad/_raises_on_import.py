"""An objective file that fails when imported (for objective_file_raises.yaml)."""

raise RuntimeError("the dataset path is not configured")


def objective(params, trial):
    return 0.0
