"""Deploying el_larq models with Larq Compute Engine, one job per module.

* `loading`: read a `.h5`, `.keras` or SavedModel file with el_larq's layers, after
  `el_larq.safety`'s checks of the stored config.
* `conversion`: LCE's converter on one traced inference function, with the converter's
  own error lines captured.
* `validation`: a `.tflite` file's structure, checked before any interpreter reads it.
* `flatbuffer`: op names and counts, weight bytes and sizes of a `.tflite`.
* `kinds`: how LCE treats each Keras layer (no LCE import: `el_larq.summary` uses it).
* `census`: which Keras layer became which op; binarized convs must be `LceBconv2d`.
* `verification`: Keras against LCE's interpreter on random or dataset inputs.
* `int8`: int8 weights for the float layers LCE keeps; `int8_sensitivity`: what each
  one costs in labelled top-1 and changed predictions.
* `host`: the LCE interpreter and latency on this host; `device`: on an ARM device
  through `lce_benchmark_model`; `profile`: per-op latency.
* `pipeline`: `convert/to_lce.py`'s steps as one function returning a report.

Importing this package imports none of them (and so not LCE); import the module you
need, e.g. `from el_larq.deploy.pipeline import convert_model_file`.
"""
