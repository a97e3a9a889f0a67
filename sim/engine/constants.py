"""Engine-wide constants."""

# Routing samples per MoE layer: micro-batches cycle through them. ASSUMPTION: 8 rounds capture the
# per-micro-batch spread of the hottest rank while keeping the cost independent of the batch size.
NUM_SAMPLES = 8
