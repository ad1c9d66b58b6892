"""`hydra/sweeper=tune`: seqlab's tuning sweeper (seqlab/tuning holds the logic; docs/tuning.md)."""
