"""Training: the public step API, the loop, schedules, metrics, checkpoints and loggers."""
