"""Training the on-device preference agent: distillation (intents, baselines, rules), datasets,
fine-tuning, GGUF export and evaluation. Runs as its own process (``python -m agent_training``);
the desktop app never imports this package."""

import os

# Training reads nothing from the network and runs no code it did not ship with. transformers 5.x
# "kernelizes" every model it loads with kernels it downloads from the Hugging Face Hub
# (kernels-community/rotary and others) whenever the `kernels` package is installed, which
# transformers itself requires: on a CUDA machine offline, QLoRA failed to load the base model,
# and online it would fetch and run remote code. These are set before transformers is imported
# (it and huggingface_hub read them then); load_for_training also passes use_kernels=False.
os.environ["USE_HUB_KERNELS"] = "NO"
os.environ["HF_HUB_OFFLINE"] = "1"
