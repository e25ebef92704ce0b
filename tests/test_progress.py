"""el_larq.progress: count, rate and ETA lines."""

import io

from el_larq.progress import Progress, format_duration


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_format_duration():
    assert format_duration(0) == "0:00"
    assert format_duration(65.4) == "1:05"
    assert format_duration(3725) == "1:02:05"


def test_log_lines_first_step_then_every_interval_then_the_end():
    clock, out = _Clock(), io.StringIO()
    progress = Progress("evaluate m.tflite", 1000, stream=out, interval=10, clock=clock)
    for _ in range(10):  # 100 images every 2 s: 50 images/s
        clock.now += 2
        progress.update(100)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "evaluate m.tflite: 100/1,000 images (10.0%), 50.0 images/s, ETA 0:18"
    assert lines[1].startswith("evaluate m.tflite: 600/1,000 images (60.0%)")  # 10 s later
    assert lines[-1] == "evaluate m.tflite: 1,000 images in 0:20, 50.0 images/s"
    assert len(lines) == 3


def test_unknown_total_has_no_eta():
    clock, out = _Clock(), io.StringIO()
    progress = Progress("verify", None, unit="inputs", stream=out, clock=clock)
    clock.now += 4
    progress.update(8)
    assert out.getvalue() == "verify: 8 inputs, 2.0 inputs/s\n"


def test_terminal_rewrites_one_line():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock, out = _Clock(), Tty()
    progress = Progress("x", 4, stream=out, interval=1000, clock=clock)
    for _ in range(4):
        clock.now += 1
        progress.update(1)
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1  # every step, one final newline
