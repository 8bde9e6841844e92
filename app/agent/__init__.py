"""The on-device preference agent: llama.cpp runtime, base model + the user's LoRA adapter."""
