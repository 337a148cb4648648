"""Training a network: recipes and switches, optimizers and schedules, callbacks, model cards, learning-rate control, snapshots, the trainer."""
