"""The engine that runs any task: the loop and its hooks, the runtime (device, precision, ranks),
torchrun, checkpoints, the run directory and its lock, health checks, schedules, the LR finder."""
