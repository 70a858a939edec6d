"""Data: sources and manifests, frames, flow, shards, poke simulation and the training loader."""
