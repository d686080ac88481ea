"""Moved to :mod:`fashion_utils.bench.recommender`; this name only re-exports it.

Kept because notebook 05 still does ``from fashion_utils import bench_recommender``; delete
this file once it imports ``from fashion_utils.bench import recommender`` instead.
"""

from fashion_utils.bench.recommender import *  # noqa: F401,F403
from fashion_utils.bench.recommender import __all__  # noqa: F401
