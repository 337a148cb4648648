"""Share links: the Train page's settings and the Results, Explain and Compare pages' selections live in
the address (Streamlit's `bind="query-params"`), so a copied link restores the view; the token that
lets a browser stop its run is a cookie, never in the address."""

from streamlit.testing.v1 import AppTest
from test_app import open_page

from conftest import REPO


def _opened_with(page: str, params: dict) -> AppTest:
    """A new visitor opening `page` from a link that carries `params`."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(page)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


# The browser writes a bound widget's value into the address (tests/test_browser.py checks that path);
# here: what a copied address restores when someone else opens it.


def test_a_link_restores_the_train_pages_settings_but_not_the_ownership():
    first = open_page("app_pages/train.py")
    assert "tab" not in first.query_params and "owner" not in first.query_params  # no token in the address
    link = {
        "dataset": "CIFAR-10 objects",
        "recipe": "seed",
        "epochs_cifar10_seed": "7",
        "seed_cifar10_seed": "42",
        "rot_cifar10_seed": "false",
        "bs_cifar10_seed": "128",
        "precision_cifar10_seed": "bf16",
    }
    other = _opened_with("app_pages/train.py", link)
    assert other.selectbox(key="dataset").value == "cifar10" and other.selectbox(key="arch").value == "seed"
    assert other.number_input(key="epochs_cifar10_seed").value == 7
    assert other.number_input(key="seed_cifar10_seed").value == 42
    assert other.checkbox(key="rot_cifar10_seed").value is False
    assert other.selectbox(key="bs_cifar10_seed").value == 128
    assert other.radio(key="precision_cifar10_seed").value == "bf16"
    assert other.session_state["owner"] != first.session_state["owner"]


def test_a_link_restores_the_results_and_compare_selections():
    at = _opened_with(
        "app_pages/results.py", {"model": "fashion_mnist_fast", "cm_cell": "Shirt>Coat", "cm_norm": "true"}
    )
    assert at.selectbox(key="results_model").value == "fashion_mnist_fast" and at.toggle(key="cm_norm").value
    assert any("of **Shirt** predicted as **Coat**" in m.value for m in at.markdown)  # the linked cell's images

    on_curves = _opened_with("app_pages/results.py", {"model": "cifar10_fast", "results_tab": "Training curves"})
    assert on_curves.session_state["results_tab"] == "Training curves"
    assert not on_curves.toggle and not on_curves.get("vega_lite_chart")  # only the linked tab ran: no matrix
    assert len(on_curves.image) == 1  # the curves

    cmp = _opened_with(
        "app_pages/compare.py",
        {
            "cmp_dataset": "cifar10",
            "cmp_models_cifar10": ["cifar10_fast", "cifar10_wide40"],
            "cmp_x": "training minutes",
        },
    )
    assert cmp.selectbox(key="cmp_dataset").value == "cifar10"
    assert cmp.multiselect(key="cmp_models_cifar10").value == ["cifar10_fast", "cifar10_wide40"]
    assert cmp.radio(key="cmp_x").value == "training minutes"


def test_a_link_restores_the_explain_pages_model_and_test_image():
    label = (
        _opened_with("app_pages/explain.py", {"model": "mnist_fast30", "explain_source": "A test image"})
        .select_slider(key="explain_sample_mnist_fast30")
        .options[3]
    )  # the address names a test image by its label, e.g. "#7292 (3)"
    at = _opened_with(
        "app_pages/explain.py",
        {"model": "mnist_fast30", "explain_source": "A test image", "explain_sample_mnist_fast30": label},
    )
    assert at.selectbox(key="explain_model").value == "mnist_fast30"
    assert at.radio(key="explain_source").value == "A test image"
    assert at.select_slider(key="explain_sample_mnist_fast30").value == 3


def test_a_bad_value_in_a_link_is_dropped_not_an_error():
    at = _opened_with("app_pages/train.py", {"dataset": "imagenet", "epochs_mnist_quick": "lots"})
    assert at.selectbox(key="dataset").value == "mnist"  # the default, and no exception
