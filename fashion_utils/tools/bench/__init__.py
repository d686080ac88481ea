"""Speed and memory benchmarks (``make bench``), written to ``reports/benchmarks.json``.

Modules, imported one way only (``measure`` <- the sections <- ``__main__``; ``scale``
builds on ``synthetic``, ``stages`` and ``recommender``):

- :mod:`~fashion_utils.tools.bench.measure`: the one measuring helper: a function in a fresh
  process (:func:`~fashion_utils.tools.bench.measure.run_isolated`), peak RSS, CPU seconds, load
  average, machine info, the results file and the tables on the docs pages (``BENCH_PAGES``).
- :mod:`~fashion_utils.tools.bench.extraction`: streamed feature extraction vs the model alone vs a
  naive loop, per image size, and the whole catalog with its cached rerun.
- :mod:`~fashion_utils.tools.bench.synthetic`: the synthetic full-size Kaggle-layout catalog.
- :mod:`~fashion_utils.tools.bench.stages`: the scale benchmark's light stages (loading,
  extraction, decoding), in a module that imports no TensorFlow.
- :mod:`~fashion_utils.tools.bench.recommender`: query latency of the exact index and of FAISS, and
  the scale benchmark's index stage.
- :mod:`~fashion_utils.tools.bench.scale`: that 44k-product catalog through the pipeline, stage by
  stage.
- ``__main__``: ``python -m fashion_utils.tools.bench [section ...]``.
"""
