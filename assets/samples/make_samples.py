"""Regenerate the bundled sample images (run once; the images are committed).

    CNN_DATA_DIR=../shared/datasets python assets/samples/make_samples.py

CIFAR-10 test images are enlarged 4× (so they look like small photos in the app);
the two scikit-learn sample photos show what happens off CIFAR-10's ten classes.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from cnn_core.datasets import load_dataset

HERE = Path(__file__).resolve().parent
# The first test image of each of these classes.
PICKS = ("automobile", "airplane", "cat", "frog", "horse", "ship", "truck")


def main():
    data = load_dataset("cifar10")
    for cls in PICKS:
        label = data.info.class_names.index(cls)
        index = int(np.flatnonzero(data.y_test == label)[0])
        img = Image.fromarray(data.x_test[index]).resize((128, 128), Image.Resampling.LANCZOS)
        img.save(HERE / f"{cls}_cifar10_test_{index}.png")
    from sklearn.datasets import load_sample_image

    for name in ("china.jpg", "flower.jpg"):
        Image.fromarray(load_sample_image(name)).save(HERE / f"offclass_{name}", quality=90)


if __name__ == "__main__":
    main()
