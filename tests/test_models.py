import pytest

from cnn_core.base.errors import ConfigError
from cnn_core.nets.models import ARCHITECTURES, architecture_spec, build_model


def _count_from_spec(spec, input_shape, num_classes):
    """Parameter count computed by hand from the spec (no Keras), to check the builder."""
    h, w, c = input_shape
    total = 0
    for kind, opt in spec:
        if kind == "whiten_stem":  # a k×k valid conv with a bias
            k, f = opt["kernel"], opt["filters"]
            total += k * k * c * f + f
            h, w, c = h - k + 1, w - k + 1, f
        elif kind in ("conv_relu_bn", "conv_bn_relu", "conv_pool_bn_relu"):
            f = opt["filters"]
            bn_vectors = 3 if opt.get("bn", {}).get("scale") is False else 4  # [γ,] β, moving mean and variance
            total += 9 * c * f + (f if kind == "conv_relu_bn" else 0) + bn_vectors * f
            if opt.get("padding") == "valid":
                h, w = h - 2, w - 2
            if kind == "conv_pool_bn_relu":
                h, w = h // 2, w // 2
            c = f
        elif kind == "max_pool":
            h, w = h // 2, w // 2
        elif kind == "flatten":
            c, h, w = h * w * c, 1, 1
        elif kind == "global_max_pool":
            h = w = 1
        elif kind == "dense_relu_bn":
            total += c * opt["units"] + opt["units"] + 4 * opt["units"]
            c = opt["units"]
        elif kind == "classifier":
            total += c * num_classes + (num_classes if opt.get("use_bias", True) else 0)
    return total


def test_seed_parameter_counts_match_the_original_spec():
    # 198,762 and 816,938 follow from the README's layer lists (see issue #2).
    assert build_model("seed", "mnist").count_params() == 198_762
    assert build_model("seed", "cifar10").count_params() == 816_938


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_builder_follows_every_spec(arch, dataset):
    from cnn_core.data.datasets import dataset_info

    info = dataset_info(dataset)
    model = build_model(arch, dataset)
    assert model.input_shape == (None, *info.input_shape)
    assert model.output_shape == (None, 10)
    assert model.count_params() == _count_from_spec(architecture_spec(arch, dataset), info.input_shape, 10)


def test_models_output_probabilities():
    import numpy as np

    model = build_model("fast", "cifar10")
    probs = np.asarray(model(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")))
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ConfigError, match="Unknown architecture 'resnet999'.*seed"):
        build_model("resnet999", "mnist")
