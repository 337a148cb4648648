"""The project's own Keras layers (registered, so saved models load by name).

FusedBatchNorm: Keras' BatchNormalization computed, while training, by TensorFlow's fused
kernel (one pass for the statistics and the normalisation, and a hand-written gradient)
instead of Keras' separate moments/normalise ops and their autodiff, for a faster training step.
Same variables and config, so it loads, converts and serves like BatchNormalization.
"""

from __future__ import annotations

import keras
import tensorflow as tf

FUSED_MIN_EPSILON = 1.001e-5  # TensorFlow's fused kernel refuses smaller epsilons


@keras.saving.register_keras_serializable(package="cnn_core")
class FusedBatchNorm(keras.layers.BatchNormalization):
    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            tf.cast(inputs, tf.float32), scale, offset, epsilon=max(self.epsilon, FUSED_MIN_EPSILON), is_training=True
        )
        # The kernel's variance is Bessel-corrected, as PyTorch's running variance is.
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)
