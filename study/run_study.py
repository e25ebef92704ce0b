"""Small-scale reproduction of the paper's ablations on Fashion-MNIST (issue 7).

Every configuration is a recipe (`el_larq.recipes`) trained with ONE identical recipe (the
flags below), for each seed, by real subprocesses of train/train.py, then evaluated on
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet TensorFlow (el_larq imports it)

from el_larq import cli  # noqa: E402
from el_larq.io import write_atomic  # noqa: E402

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


FLAGS = flags.FLAGS
flags.DEFINE_list("only", None, "Run only these recipes (default: all, in priority order).")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds.")
flags.DEFINE_string("runs_dir", os.path.join(ROOT, "runs", "study"), "Where runs go.")
flags.DEFINE_integer("timeout", 3600, "Seconds one training run may take.", lower_bound=1)
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the usual places).")
flags.DEFINE_string(
    "teacher", None, "Trained classifier (.h5) for recipes whose stages distill from --teacher."
)
flags.DEFINE_list(
    "lce_check",
    ["el_resnet26"],
    "Recipes whose trained model is also converted with --strict (verified) and evaluated on "
    "the same test set through the LCE interpreter (final_eval_lce.json).",
)
flags.DEFINE_integer(
    "verify_samples",
    256,
    "Test images the --lce_check conversions are verified on (to_lce.py --samples; fewer if "
    "the test set is smaller). On 16 images one sign flip of a barely trained net costs 6 "
    "points of top-1 agreement against a 95 % limit; on 256 it costs 0.4.",
    lower_bound=1,
)
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
    lower_bound=1,
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


class StudyError(ValueError):
    """Bad study arguments; main prints the message as one line and exits 1."""


# What each study recipe value must be, for a clear error before any run starts.
def _positive_int(text: str) -> bool:
    return text.isdigit() and int(text) > 0


def _positive_float(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _fractions(text: str) -> bool:
    try:
        return all(0 < float(part) < 1 for part in text.split(","))
    except ValueError:
        return False


_RECIPE_VALUES = {
    "width": (_positive_float, "a positive number"),
    "batch_size": (_positive_int, "a positive integer"),
    "epochs": (_positive_int, "a positive integer"),
    "steps_per_epoch": (_positive_int, "a positive integer"),
    "validation_steps": (_positive_int, "a positive integer"),
    "learning_rate": (_positive_float, "a positive number"),
    "lr_decay_epochs": (_fractions, "fractions in (0, 1), comma-separated"),
    "lr_decay_factor": (_positive_float, "a positive number"),
    # Not in RECIPE (each dataset's own size by default): for models with a minimum input
    # size, e.g. keras-applications' 32 px.
    "image_size": (_positive_int, "a positive integer"),
    # Also not in RECIPE: keras-applications' BatchNorms (0.999) need it for short runs.
    "batch_norm_momentum": (_fractions, "a number in (0, 1)"),
}


def study_recipe() -> dict[str, str]:
    """RECIPE with the --set changes applied (unknown keys and bad values are refused)."""
    recipe = dict(RECIPE)
    key = None
    for item in FLAGS.set:
        if "=" not in item and key == "lr_decay_epochs":
            # --set is split at commas: lr_decay_epochs=0.5,0.8 arrives as two items.
            recipe[key] += f",{item}"
            continue
        key, sep, value = item.partition("=")
        if not sep or key not in _RECIPE_VALUES:
            raise StudyError(
                f"--set {item!r}: expected KEY=VALUE with KEY in {sorted(_RECIPE_VALUES)}."
            )
        recipe[key] = value
    for key, value in recipe.items():
        valid, expected = _RECIPE_VALUES[key]
        if not valid(value):
            raise StudyError(f"--set {key}={value!r}: {key} must be {expected}.")
    return recipe


def check_arguments() -> list[tuple[str, str]]:
    """Check every argument before any run starts; returns the (recipe, seed) runs.

    # Returns
        The runs in priority order.

    # Raises
        StudyError: an unknown configuration (recipe) name, a bad or repeated seed, a
            bad --set, a --data_dir that is not a directory, or a --runs_dir that cannot
            be created.
    """
    from el_larq import recipes

    study_recipe()
    names = FLAGS.only or CONFIGS
    known = recipes.list_recipes()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise StudyError(
            f"unknown configuration {unknown[0]!r} in --only; valid: {', '.join(known)}."
        )
    for name in names:
        try:
            recipes.load_recipe(name)  # a malformed recipe fails here, not in its run
        except ValueError as error:
            raise StudyError(str(error)) from None
    if not FLAGS.seeds:
        raise StudyError("--seeds is empty; give at least one seed, e.g. --seeds 0,1.")
    for seed in FLAGS.seeds:
        if not seed.isdigit() or int(seed) >= 2**32:
            raise StudyError(f"--seeds {seed!r}: a seed is an integer in [0, 2**32).")
    seeds = [str(int(seed)) for seed in FLAGS.seeds]  # "01" and "1" are the same run
    if len(set(seeds)) != len(seeds) or len(set(names)) != len(names):
        raise StudyError("--seeds and --only must not repeat a value.")
    if FLAGS.teacher and not os.path.isfile(FLAGS.teacher):
        raise StudyError(f"--teacher {FLAGS.teacher}: no such file.")
    if FLAGS.data_dir and not os.path.isdir(FLAGS.data_dir):
        raise StudyError(f"--data_dir {FLAGS.data_dir} is not a directory.")
    existing = os.path.abspath(FLAGS.runs_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise StudyError(
            f"cannot create or write --runs_dir {FLAGS.runs_dir}: {existing} is not a "
            "writable directory."
        )
    return [(recipe, seed) for recipe in names for seed in seeds]


def final_stage_dir(recipe: str, out: str) -> str:
    """Where the run's final model and metrics are: `out`, or its last stage's folder."""
    from el_larq import recipes

    stages = recipes.load_recipe(recipe).get("stages", [])
    return os.path.join(out, f"{len(stages)}_{stages[-1]['name']}") if stages else out


def run_one(recipe: str, seed: str) -> str:
    out = os.path.join(FLAGS.runs_dir, f"{recipe}_s{seed}")
    final = os.path.join(out, "final_eval.json")
    last = final_stage_dir(recipe, out)
    final_lce = os.path.join(out, "final_eval_lce.json")
    lce_due = recipe in FLAGS.lce_check and not os.path.exists(final_lce)
    if os.path.exists(final) and not lce_due:
        return "done before"
    os.makedirs(out, exist_ok=True)
    model = os.path.join(last, "model.h5")
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
    if FLAGS.teacher and last != out:
        train.append(f"--teacher={FLAGS.teacher}")

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
        f"--samples={FLAGS.verify_samples}",
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
                record = {
                    "recipe": recipe,
                    "seed": int(seed),
                    "study_recipe": study_recipe(),
                    "wall_seconds": round(time.time() - start, 1),
                }
                write_atomic(os.path.join(out, "study.json"), json.dumps(record, indent=1).encode())
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
    try:
        runs = check_arguments()  # before anything runs or is created
    except StudyError as error:
        sys.exit(f"run_study.py: error: {error}")
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
    app.run(main, flags_parser=cli.flags_parser("run_study.py"))
