"""PyTorch trainers for the training methods (see the issues)."""
