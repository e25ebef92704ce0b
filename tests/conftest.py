"""Shared test set-up: el_larq imported before TensorFlow or larq (Keras 2), shared fixtures."""

import os

import pytest

import el_larq  # noqa: F401

# Quiet TensorFlow's C++ start-up chatter in the subprocesses that tests start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def mixed():
    """`helpers.mixed_model()`, converted with LCE: (model, flatbuffer, converter messages)."""
    from helpers import mixed_model

    from el_larq.deploy.conversion import convert

    model = mixed_model()
    flatbuffer, messages = convert(model)
    return model, flatbuffer, messages
