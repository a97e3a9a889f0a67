"""Closed-form step estimate sharing the DES's cost model."""
