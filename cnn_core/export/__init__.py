"""A saved model as a zip with a standalone Keras training script."""
