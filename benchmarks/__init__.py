"""Benchmarks of the library and the app, run from the repository root as modules:
`python -m benchmarks.NAME --help`. `benchmarks.browser` is the real-browser harness they
share with the browser tests; `benchmarks._machines` keeps results per machine."""
