"""The baselines of the paper's comparisons (iPOKE appendix F), trained and evaluated on the same data.

- :mod:`.ii2v`: II2V (Blattmann et al., CVPR 2021), the deterministic hierarchical image-to-sequence UNet.
- :mod:`.cvae`: iPOKE's cVAE counterpart, the AE's parts and the conditioning encoders with a Gaussian z.
- :mod:`.hao`: Hao et al. (CVPR 2018) as appendix F runs it: x0 warped along tracked flow trajectories.
- :mod:`.io`: saving and loading a trained baseline (weights and config).
"""
