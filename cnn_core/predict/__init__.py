"""Serving predictions: LiteRT and Keras predictors, ensembles and TTA, temperature calibration, the "not one of these classes" detector."""
