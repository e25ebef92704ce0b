"""Training with the paper's recipe: Adam, no weight decay, STE, step learning-rate decay.

`train(config)` trains a zoo model on a dataset from `el_larq.data` and writes
everything a run produces into `config.output_dir`:

    model.h5              final model (atomic write; `load_model` after `import el_larq`)
    checkpoints/last.h5   weights after the latest epoch
    checkpoints/best.h5   weights of the epoch with the best validation top-1
    backup/               Keras BackupAndRestore state (removed once model.h5 exists)
    FAILED                only after a failure that left nothing to resume: why
    logs/                 TensorBoard logs
    metrics.csv, .json    one row per epoch (loss, top-1, top-5, validation, lr, time)
    curves.png            loss, top-1 and learning rate per epoch (with matplotlib)
    gamma_report.json     learned gamma of every Elastic-Link (and .png plot)
    command.txt           the exact command line; config.json: the resolved config

Runs are crash-safe: killed at any point, the same command resumes from the last
backup (every epoch end, or every `backup_steps` steps) and ends after the same number
of epochs, with one metrics row per epoch. The directory belongs to one run
(`el_larq.run_dir`): it is locked while training, a different configuration is refused,
and `overwrite` removes only the files a run writes.

Modules: `config` (`TrainConfig`, recipe values, checks, learning-rate schedule),
`loop` (`compile_model`, the crash-safe callbacks, `train`), `stages` (multi-stage
recipes: `stage_configs`, `train_stages`), `evaluation` (`evaluate_model`).
Distillation (a `teacher`, attention matching, weight decay) is `el_larq.distillation`.
"""

from el_larq.training.config import (
    LR_SCHEDULES,
    USER_ERRORS,
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    learning_rate_schedule,
    resolve_config,
)
from el_larq.training.evaluation import evaluate_model
from el_larq.training.loop import (
    FINAL_MODEL,
    compile_model,
    read_metrics,
    save_model_atomic,
    train,
)
from el_larq.training.stages import (
    STAGES_FILE,
    recipe_stages,
    stage_configs,
    train_stages,
)

__all__ = [
    "ConfigError",
    "FINAL_MODEL",
    "LR_SCHEDULES",
    "TrainConfig",
    "TrainingDiverged",
    "USER_ERRORS",
    "compile_model",
    "evaluate_model",
    "learning_rate_schedule",
    "read_metrics",
    "resolve_config",
    "save_model_atomic",
    "STAGES_FILE",
    "recipe_stages",
    "stage_configs",
    "train",
    "train_stages",
]
