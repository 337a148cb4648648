"""cnn_core: train, evaluate and serve small CNNs for MNIST, Fashion-MNIST and CIFAR-10.

UI-free by design: the CLI (`python -m cnn_core`), the Streamlit app, the
benchmarks and the tests all call this package; it never imports streamlit.
"""

import os

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's kernels on every x86 CPU, not only on those with AVX-512 (TensorFlow's own default,
# read once when TensorFlow starts, so this must come before it is imported): they train the airbench
# net faster than TensorFlow's Eigen kernels, with or without XLA (benchmarks/results/step_profile.md).
# TF_ENABLE_ONEDNN_OPTS=0 still turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from cnn_core.base.errors import CnnError, ConfigError, DataError, ImageError, ModelStoreError
from cnn_core.data.datasets import DATASETS, Dataset, DatasetInfo, dataset_info, load_dataset

__version__ = "0.1.0"
__all__ = [
    "DATASETS",
    "CnnError",
    "ConfigError",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "ImageError",
    "ModelStoreError",
    "__version__",
    "dataset_info",
    "load_dataset",
]
