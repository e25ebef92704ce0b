"""Convert a trained Keras model to a Larq Compute Engine flatbuffer you can trust.

    python convert/to_lce.py model.h5 [-o model.tflite] [--target=arm|xcore] [--strict]
        [--int8_weights] [--no-verify] [--samples=16] [--dataset=fashion_mnist]
        [--json=report.json]

The same as `el-larq convert` (`el_larq.cli.convert`); see docs/deployment.md.
"""

from el_larq.cli import convert

if __name__ == "__main__":
    convert.run()
