"""result.json records what was run and the software and hardware it ran on."""
import json
import platform

import torch

from clipprompt.results.result_file import write_result


def test_write_result_records_the_environment(tmp_path):
    path = write_result(tmp_path, {"accuracy": 61.25}, {"trainer": "CoOp", "seed": 1}, "cfg: 1\n")
    record = json.loads(path.read_text())
    assert record["metrics"] == {"accuracy": 61.25} and record["trainer"] == "CoOp"
    env = record["environment"]
    assert env["torch"] == torch.__version__
    assert env["cuda"] == torch.version.cuda
    assert env["python"] == platform.python_version()
    assert env["gpu"] == (torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    assert env["torchvision"] and env["clip"]  # installed distributions, with versions
    for key in ("cudnn", "dassl", "platform"):
        assert key in env
