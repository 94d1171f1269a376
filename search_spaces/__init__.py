"""Ready search spaces for the training methods (see the issues)."""
