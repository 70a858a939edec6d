"""The synthetic poking world: procedural articulated objects, poke physics, rendering and ground truth.

Each video shows one object instance (a plant or a puppet) on a static background being poked several
times; its sidecar holds the truth (per-part rigid transforms, keypoints, masks, pokes) from which dense
flow between any two frames is exact. The ``synthetic`` download source writes the dataset.
"""
