"""Training: recipe schema (one source of truth), strategies, schedule, the Accelerate loop, resumable
state, the feature cache and the run entry point. ``python -m zoo.train`` runs ``zoo.cli.train``."""
