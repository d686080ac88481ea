"""fashion_utils: the helper package behind the fashion product image study.

The notebooks in ``notebooks/`` tell the story; this package does the work. Modules are
imported one by one (``from fashion_utils.catalog import data``) so that importing the package does
not pull in TensorFlow.
"""

from fashion_utils import config as _config  # noqa: F401  (quiets TensorFlow's first import)

__version__ = "0.1.0"
