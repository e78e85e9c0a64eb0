"""Training and evaluation machinery: distributed set-up, checkpoints, the training loop, evaluation."""
