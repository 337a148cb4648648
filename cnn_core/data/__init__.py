"""Datasets and the one path from any picture to a model's input: loading, splits, preprocessing, augmentation, the tf.data pipeline."""
