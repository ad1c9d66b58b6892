"""seqlab's Hydra launcher on Ray's public API: `hydra/launcher=ray` (conf/hydra/launcher/ray.yaml)."""
