"""Latency of LCE `.tflite` models: on this host, or on an ARM device with lce_benchmark_model.

    python convert/benchmark.py a.tflite [b.tflite ...] [--num_threads=1] [--num_runs=50]
        [--warmup_runs=5] [--kernel=indirect_bgemm|optimized|reference] [--json=out.json]
    python convert/benchmark.py m.tflite --device=local|adb|ssh --binary=lce_benchmark_model

The same as `el-larq benchmark` (`el_larq.cli.benchmark`); see docs/deployment.md.
"""

from el_larq.cli import benchmark

if __name__ == "__main__":
    benchmark.run()
