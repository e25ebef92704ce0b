"""Which float layers can store int8 weights without costing accuracy: one layer at a time.

    python convert/int8_sensitivity.py model.h5 [--dataset=fashion_mnist] [--max_examples=N]
        [--json=sensitivity.json]

The same as `el-larq int8-sensitivity` (`el_larq.cli.int8_sensitivity`); see
docs/deployment.md, section 1.1.
"""

from el_larq.cli import int8_sensitivity

if __name__ == "__main__":
    int8_sensitivity.run()
