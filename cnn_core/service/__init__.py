"""The app's job service: one background training job per server and its live curves."""
