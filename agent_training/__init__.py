"""Training the on-device preference agent: distillation (intents, baselines, rules), datasets,
fine-tuning, GGUF export and evaluation. Runs as its own process (``python -m agent_training``);
the desktop app never imports this package."""
