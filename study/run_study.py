"""Small-scale reproduction of the paper's ablations on Fashion-MNIST (issue 7).

Every configuration is a zoo/ recipe trained with ONE identical recipe (the flags
below), for each seed, by real subprocesses of train/train.py, then evaluated on
the full Fashion-MNIST test set by train/evaluate.py. Runs are idempotent: a run
whose `final_eval.json` exists is skipped, so the study can be stopped and resumed
(e.g. across sessions). Logs: `<runs_dir>/<recipe>_s<seed>/log.txt`.

    python study/run_study.py                      # everything, in priority order
    python study/run_study.py --only el_resnet26,sresnet26_ks --seeds 0
    python study/report.py                         # table, plots, docs/results/

Runs go in priority order (baseline vs EL6 and the MobileNet trio first), so a
partial study still answers the main questions.
"""

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Priority order: Table 2 baseline vs EL6, MobileNet trio (convergence), Table 2, Table 4,
# Table 3's basic-block and full-precision comparisons.
CONFIGS = [
    "sresnet26_ks", "el_resnet26",
    "binary_mobilenet", "el_mobilenet", "mobilenet",
    "el1", "el2", "el3", "el4", "el5",
    "sresnet26_reduce_fp", "sresnet26_reduce_el_minus",
    "el_resnet18", "bireal_resnet18", "resnet18", "resnet26",
]  # fmt: skip

# The one recipe every configuration gets (stated in docs/results/README.md).
RECIPE = {
    "width": "0.25",
    "batch_size": "128",
    "epochs": "8",
    "steps_per_epoch": "25",
    "validation_steps": "10",
    "learning_rate": "1e-3",
    "lr_decay_epochs": "0.5,0.8",
    "lr_decay_factor": "0.1",
}

# Converted to LCE after training, and the flatbuffer evaluated on the same test set
# through the LCE interpreter (issue 7: EL6's LCE top-1 must match Keras').
LCE_CHECK = ("el_resnet26",)

FLAGS = flags.FLAGS
flags.DEFINE_list("only", None, "Run only these recipes (default: all, in priority order).")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds.")
flags.DEFINE_string("runs_dir", os.path.join(ROOT, "runs", "study"), "Where runs go.")
flags.DEFINE_integer("timeout", 3600, "Seconds one training run may take.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the usual places).")
flags.DEFINE_list(
    "set",
    [],
    "Change the study recipe, e.g. --set epochs=1,steps_per_epoch=2 (a smoke test; the change "
    "is recorded in each run's study.json, and results of another recipe are not comparable).",
)
flags.DEFINE_integer(
    "jobs",
    1,
    "Runs trained at once, each pinned to its own share of the CPUs. On this 2-core machine "
    "two single-core runs finish more images per second in total than one two-core run.",
)

# Each worker thread of the pool owns one CPU set for the processes it starts.
_cpus = threading.local()


def _run(cmd: list[str], log) -> int:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    cpus = getattr(_cpus, "set", None)
    return subprocess.run(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=FLAGS.timeout,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    ).returncode


def study_recipe() -> dict[str, str]:
    """RECIPE with the --set changes applied (unknown keys are refused)."""
    recipe = dict(RECIPE)
    for item in FLAGS.set:
        key, sep, value = item.partition("=")
        if not sep or key not in RECIPE:
            raise app.UsageError(f"--set {item!r}: expected KEY=VALUE with KEY in {sorted(RECIPE)}")
        recipe[key] = value
    return recipe


def run_one(recipe: str, seed: str) -> str:
    out = os.path.join(FLAGS.runs_dir, f"{recipe}_s{seed}")
    final = os.path.join(out, "final_eval.json")
    final_lce = os.path.join(out, "final_eval_lce.json")
    lce_due = recipe in LCE_CHECK and not os.path.exists(final_lce)
    if os.path.exists(final) and not lce_due:
        return "done before"
    os.makedirs(out, exist_ok=True)
    model = os.path.join(out, "model.h5")
    tflite = os.path.join(out, "model.tflite")
    train = [
        sys.executable,
        os.path.join(ROOT, "train", "train.py"),
        f"--recipe={recipe}",
        "--dataset=fashion_mnist",
        f"--seed={seed}",
        f"--output_dir={out}",
        "--verbose=2",
    ]
    train += [f"--{key}={value}" for key, value in study_recipe().items()]
    data = [f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []
    train += data

    def evaluate(path: str, json_path: str) -> list[str]:
        return [
            sys.executable,
            os.path.join(ROOT, "train", "evaluate.py"),
            f"--model={path}",
            "--dataset=fashion_mnist",
            f"--json={json_path}",
            *data,
        ]

    convert = [
        sys.executable,
        os.path.join(ROOT, "convert", "to_lce.py"),
        model,
        f"--output={tflite}",
        "--dataset=fashion_mnist",
        "--strict",
        *data,
    ]
    with open(os.path.join(out, "log.txt"), "a") as log:
        start = time.time()
        try:
            if not os.path.exists(final):
                if _run(train, log) != 0:
                    return f"TRAINING FAILED (see {out}/log.txt)"
                if _run(evaluate(model, final), log) != 0:
                    return f"EVALUATION FAILED (see {out}/log.txt)"
                with open(os.path.join(out, "study.json"), "w") as f:
                    json.dump(
                        {
                            "recipe": recipe,
                            "seed": int(seed),
                            "study_recipe": study_recipe(),
                            "wall_seconds": round(time.time() - start, 1),
                        },
                        f,
                        indent=1,
                    )
            if lce_due:
                if _run(convert, log) != 0:
                    return f"LCE CONVERSION FAILED (see {out}/log.txt)"
                if _run(evaluate(tflite, final_lce), log) != 0:
                    return f"LCE EVALUATION FAILED (see {out}/log.txt)"
        except subprocess.TimeoutExpired:
            # The next invocation resumes it from its BackupAndRestore state.
            return f"TIMED OUT after {FLAGS.timeout} s (rerun to resume; see {out}/log.txt)"
    return "ok"


def _cpu_sets(jobs: int) -> list[set[int]]:
    cpus = sorted(os.sched_getaffinity(0))
    return [set(cpus[i::jobs]) for i in range(jobs)]


def main(argv):
    del argv
    study_recipe()  # refuse a bad --set before anything runs
    runs = [(recipe, seed) for recipe in FLAGS.only or CONFIGS for seed in FLAGS.seeds]
    jobs = max(1, min(FLAGS.jobs, len(runs), len(os.sched_getaffinity(0))))
    free = _cpu_sets(jobs) if jobs > 1 else [None]
    lock = threading.Lock()

    def work(run: tuple[str, str]) -> str:
        if not hasattr(_cpus, "set"):
            with lock:
                _cpus.set = free.pop()
        start = time.time()
        status = run_one(*run)
        print(f"{run[0]:28s} seed {run[1]}: {status} ({time.time() - start:.0f} s)", flush=True)
        return status

    # Priority order is kept: the pool starts runs in list order as workers free up.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        statuses = [future.result() for future in [pool.submit(work, run) for run in runs]]
    failed = [s for s in statuses if s not in ("ok", "done before")]
    if failed:
        print(f"{len(failed)} of {len(runs)} runs did not finish; rerun to retry them.")
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
