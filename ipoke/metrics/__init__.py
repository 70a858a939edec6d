"""Evaluation metrics (paper 4.3 and appendix G), each a function of arrays, tensors or a sampler.

- :mod:`.fvd`: Frechet Video Distance with the Kinetics-400 I3D, and the Frechet distance.
- :mod:`.i3d`: the I3D network in PyTorch with the TF-Hub weights.
- :mod:`.perceptual`: LPIPS with the AlexNet (the paper's) or VGG16 backbone.
- :mod:`.image`: per-frame PSNR and SSIM.
- :mod:`.diversity`: mean pairwise MSE and LPIPS between samples for the same poke.
- :mod:`.control`: how far the poked point lands from its target, tracked with optical flow.
- :mod:`.kinematics`: kinematics maps (Fig. 7): which pixels move with a poke at one location.
- :mod:`.ambiguity`: error and spread of many samples for 1..5 pokes (Fig. 9).

Videos are uint8 numpy ``(..., T, H, W, 3)`` or float torch ``(..., T, 3, H, W)`` in [-1, 1]
(:mod:`.videos` converts); each signature says which. A metric whose pretrained weights are missing
returns :class:`MetricUnavailable` instead of a number.
"""

from ipoke.metrics.unavailable import MetricUnavailable

__all__ = ["MetricUnavailable"]
