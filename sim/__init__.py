"""moe-sim: discrete-event simulation of Mixture-of-Experts LLM training on accelerator clusters."""

__version__ = "0.1.0"
