"""Train: choose a dataset, recipe and hyperparameters; start, watch live per-batch curves, stop. The run
trains in its own lower-priority process (cnn_core.service.jobs); a refresh or a second tab reconnects to it."""

import time

import streamlit as st

from app_pages._common import URL, from_link, get_jobs, into_link, owner_token
from app_pages._history_view import probe_choice
from app_pages._job_view import show_job
from app_pages._recipe_view import augmentation, improvements
from app_pages._run_form_view import run_numbers, start_notes
from cnn_core.base.errors import CnnError
from cnn_core.base.runtime import machine_info
from cnn_core.data.datasets import DATASETS
from cnn_core.nets.models import ARCHITECTURES
from cnn_core.service.jobs import ServerCaps
from cnn_core.studio.benchmark_figures import recipe_time_label, recipe_times
from cnn_core.train.recipes import FIRST_RECIPE, default_config, recipe_names, resolve_config

st.title("🏋️ Train a model")
try:  # caps and the training process's setting (README → Deploy); the server's jobs refuse runs beyond the caps too
    caps, jobs = ServerCaps.from_env(), get_jobs()
except CnnError as err:
    st.error(str(err))
    st.stop()
owner, snap = owner_token(), jobs.snapshot()
active = bool(snap and snap.active)


@st.fragment(run_every=1.0 if active else None)
def live():
    now = jobs.snapshot()
    if now is not None:
        show_job(now, jobs, owner)
    if active and now is not None and not now.active:
        st.rerun()  # the run ended: redraw the whole page (form enabled again)


live()
st.divider()
st.subheader("New run")
c1, c2 = st.columns(2)
dataset = c1.selectbox("Dataset", list(DATASETS), format_func=lambda d: DATASETS[d].title, key="dataset", bind=URL)
times = recipe_times(dataset, machine_info())  # the recipes' benchmark figures for this CPU, or for the most alike one
arch = into_link(
    "recipe",
    c2.selectbox(
        "Architecture and recipe",
        recipe_names(),
        index=from_link("recipe", recipe_names(), recipe_names().index(FIRST_RECIPE)),
        key="arch",
        format_func=lambda a: " · ".join(filter(None, (a, recipe_time_label(a, times)))),
    ),
)
st.caption(ARCHITECTURES[arch].description)
defaults, k = default_config(dataset, arch), f"{dataset}_{arch}"  # keys per choice: defaults follow the recipe
epochs, batch_size, lr, seed, precision, subset = run_numbers(defaults, k, caps)
augment, switches = augmentation(dataset, defaults, k), improvements(defaults, k)
name = (
    st.text_input(
        "Run name (optional)",
        key="run_name",
        placeholder=f"{dataset}_{arch}_<date-time>",
        help="Letters, digits, '_' and '-'.",
    ).strip()
    or None
)
probe = probe_choice(dataset)
start_notes(dataset, active)
if st.button("▶ Start training", type="primary", disabled=active, key="start"):
    try:
        jobs.start(
            resolve_config(
                dataset,
                arch,
                epochs=int(epochs),
                batch_size=int(batch_size),
                lr=float(lr),
                seed=int(seed),
                subset=caps.subset_for(subset),
                augment=augment,
                precision=precision,
                switches=switches,
            ),
            name,
            owner,
            probe=probe,
        )
    except CnnError as err:
        st.error(str(err))
    else:
        time.sleep(0.3)  # let the worker publish its first state before the redraw
        st.rerun()
