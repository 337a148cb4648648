"""cnn_core: train, evaluate and serve small CNNs for MNIST, Fashion-MNIST and CIFAR-10.

UI-free by design: the CLI (`python -m cnn_core`), the Streamlit app, the
benchmarks and the tests all call this package; it never imports streamlit.
"""

import os

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .datasets import DATASETS, Dataset, DatasetInfo, dataset_info, load_dataset  # noqa: E402
from .errors import CnnError, ConfigError, DataError, ImageError, ModelStoreError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["DATASETS", "Dataset", "DatasetInfo", "dataset_info", "load_dataset", "CnnError", "ConfigError",
           "DataError", "ImageError", "ModelStoreError", "__version__"]
