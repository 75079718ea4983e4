"""What the tests that run the Lambda binaries share: the moto environment and `cargo lambda
watch` as the runtime API emulator."""

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from conftest import ROOT, free_port, tail, wait_until

MOTO = os.environ.get("MOTO_ENDPOINT", "").strip()
CARGO_LAMBDA = shutil.which("cargo-lambda")
REGION = "us-east-1"


def aws_env():
    """Environment for everything that talks to moto: endpoint, region, dummy credentials."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        AWS_ENDPOINT_URL=MOTO,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def boto(service):
    import boto3

    return boto3.client(
        service,
        endpoint_url=MOTO,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Watch:
    """`cargo lambda watch` in its own process group, logging outside the work tree (it rebuilds
    on changes in the tree; --ignore-changes keeps other people's edits from restarting it)."""

    def __init__(self, env_file, log_path):
        self.port = free_port()
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                CARGO_LAMBDA, "lambda", "watch",
                "--invoke-address", "127.0.0.1",
                "--invoke-port", str(self.port),
                "--ignore-changes",
                "--env-file", str(env_file),
            ],
            cwd=ROOT, env=aws_env(), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_until(self._listening, timeout=120, interval=0.2,
                   message=f"cargo lambda watch on port {self.port}")

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"cargo lambda watch exited {self.proc.returncode}\n{tail(self.log_path)}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def invoke(self, function, data_file=None, data=None, timeout=120):
        """`cargo lambda invoke FUNCTION` with the event in `data_file` or `data` (text, passed
        through a file: one argument may not exceed 128 KiB); returns the function's JSON
        response."""
        argv = [CARGO_LAMBDA, "lambda", "invoke", function,
                "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port),
                "--output-format", "json"]
        if data is not None:
            data_file = self.log_path.parent / f"invoke-{function}.json"
            data_file.write_text(data)
        if data_file is not None:
            argv += ["--data-file", str(data_file)]
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, env=aws_env(), timeout=timeout)
        assert result.returncode == 0, (
            f"cargo lambda invoke {function} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\n---- watch log ----\n{tail(self.log_path)}"
        )
        return json.loads(result.stdout)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self._log.close()
