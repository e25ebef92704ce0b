"""el_larq.deploy.device: the values that end up on a device's command line."""

import pytest

from el_larq.deploy.device import check_remote_dir, check_ssh_host, remote_name
from el_larq.safety import DeploymentError


@pytest.mark.parametrize(
    "host",
    ["-oProxyCommand=touch pwned", "pi@host;touch pwned", "pi@host name", "host:/tmp", "a/b", ""],
)
def test_hosts_that_could_be_options_or_paths_are_refused(host):
    with pytest.raises(DeploymentError, match="--host"):
        check_ssh_host(host)


@pytest.mark.parametrize(
    "remote_dir, reason",
    [
        ("tmp/lce", "absolute"),
        ("/tmp/$(touch pwned)", "may only contain"),
        ("/tmp/a b", "may only contain"),
        ("/tmp/x\n/y", "may only contain"),
        ("/tmp/'x'", "may only contain"),
    ],
)
def test_remote_dirs_that_need_quoting_or_are_relative_are_refused(remote_dir, reason):
    with pytest.raises(DeploymentError, match=reason):
        check_remote_dir(remote_dir)


def test_remote_names_are_plain_and_never_options():
    assert remote_name("out/my model;$(x).tflite") == "my_model___x_.tflite"
    assert remote_name("-rf.tflite") == "_rf.tflite"
    assert check_ssh_host("pi@raspberrypi.local") == "pi@raspberrypi.local"
    assert check_remote_dir("/data/local/tmp/") == "/data/local/tmp"
