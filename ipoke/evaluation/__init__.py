"""Evaluation of a trained pipeline (paper 4.3, appendix G) and its report.

- :mod:`.protocol`: the protocol over the test shards, returning :class:`.results.EvaluationResults`.
- :mod:`.paper_tables`: the paper's published Tables 1-3.
- :mod:`.tables`: those tables with this run's rows, as Markdown and HTML.
- :mod:`.figures`: control, ambiguity and kinematics figures; sample grid videos.
- :mod:`.outputs`: the evaluation directory (``results.json`` and the files it lists).
- :mod:`.report`: one self-contained HTML page from that directory.
- :mod:`.parent_run`: copies of the outputs on the pipeline's MLflow parent run.
"""
