"""Regenerate the bundled sample images (run once; the images are committed).

    CNN_DATA_DIR=../shared/datasets python assets/samples/make_samples.py

Test-set images are enlarged 4× (so they look like small photos in the app); the two
scikit-learn sample photos show what happens off CIFAR-10's ten classes.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from cnn_core.data.datasets import load_dataset

HERE = Path(__file__).resolve().parent
PICKS = {  # the first test image of each of these classes
    "cifar10": ("automobile", "airplane", "cat", "frog", "horse", "ship", "truck"),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Dress", "Sneaker", "Bag", "Ankle boot"),
}


def main():
    for dataset, classes in PICKS.items():
        data = load_dataset(dataset)
        folder = HERE / dataset
        folder.mkdir(exist_ok=True)
        for cls in classes:
            index = int(np.flatnonzero(data.y_test == data.info.class_names.index(cls))[0])
            img = Image.fromarray(data.x_test[index])
            img = img.resize((img.width * 4, img.height * 4), Image.Resampling.LANCZOS)
            img.save(folder / f"{cls.replace('/', '-').replace(' ', '_').lower()}_{dataset}_test_{index}.png")
    from sklearn.datasets import load_sample_image

    for name in ("china.jpg", "flower.jpg"):
        Image.fromarray(load_sample_image(name)).save(HERE / "cifar10" / f"offclass_{name}", quality=90)


if __name__ == "__main__":
    main()
