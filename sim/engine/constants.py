"""Engine-wide constants."""

# Routing samples per MoE layer: micro-batches cycle through them. ASSUMPTION: 8 rounds capture the
# per-micro-batch spread of the hottest rank while keeping the cost independent of the batch size.
NUM_SAMPLES = 8

# The analytic screen: routing sampled for this many MoE layers x micro-batches, reused cyclically.
# ASSUMPTION: layers are statistically alike, so 4 x 2 samples estimate the mean hottest-rank cost
# to within a few percent of the full sample at ~60x less cost (checked by tests/test_engine.py).
ANALYTIC_ROUTING_LAYERS = 4
ANALYTIC_SAMPLES = 2
