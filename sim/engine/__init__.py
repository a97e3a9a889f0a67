"""The training-step engine: run spec, step construction, discrete-event executor."""
