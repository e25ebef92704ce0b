"""el_larq._keras2: `import el_larq` selects Keras 2, or names the one fix that works."""

import os
import subprocess
import sys


def _run_clean(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )


def test_import_selects_keras_2_before_tensorflow():
    result = _run_clean(
        "import el_larq, tensorflow as tf, larq; print('KERAS', tf.keras.layers.Layer.__module__)"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "KERAS tf_keras." in result.stdout


def test_import_after_tensorflow_gives_the_fix_that_works():
    result = _run_clean("import tensorflow as tf; import el_larq")
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError:") and "Keras 3" in message
    assert "make `import el_larq` the first import" in message
    # importing larq first does not help (larq itself fails under Keras 3): not advised
    assert "or larq)" not in message and "larq first" not in message
    # the advice, followed, works: el_larq first, then TensorFlow and larq
    fixed = _run_clean(
        "import el_larq; import tensorflow as tf; import larq, larq_compute_engine; "
        "print('KERAS', tf.keras.layers.Layer.__module__)"
    )
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "KERAS tf_keras." in fixed.stdout


def test_importing_larq_first_does_not_select_keras_2():
    # Why the message does not offer "import larq first": it fails before el_larq runs.
    result = _run_clean("import larq; import el_larq")
    assert result.returncode != 0


def test_import_after_tensorflow_with_legacy_keras_is_fine():
    result = _run_clean(
        "import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'; import tensorflow as tf; "
        "tf.keras.layers; import el_larq; print('OK')"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK" in result.stdout


def test_missing_tf_keras_says_to_install_it():
    result = _run_clean("import sys; sys.modules['tf_keras'] = None; import el_larq")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: el_larq needs the tf-keras package for Keras 2: pip install tf-keras"
    )
