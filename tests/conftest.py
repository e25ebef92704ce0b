"""Import el_larq before any test module imports TensorFlow or larq (Keras 2 guard)."""

import os

import el_larq  # noqa: F401

# Quiet TensorFlow's C++ start-up chatter in the subprocesses that tests start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
