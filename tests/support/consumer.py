"""Run a real `huey_consumer worker.huey` process for the tests."""

import signal
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# The flags production uses (see docs/delivery.md): SIGTERM is the graceful signal.
GRACEFUL_SIGNAL = signal.SIGTERM
INTERRUPT_SIGNAL = signal.SIGINT


class HueyConsumer:
    """A consumer subprocess with the test environment; kill() it to simulate a crash."""

    def __init__(self, env, log_path, workers=4, periodic=True, extra_args=()):
        self.env = env
        self.log_path = Path(log_path)
        self.workers = workers
        self.periodic = periodic
        self.extra_args = list(extra_args)
        self.cwd = PROJECT_ROOT
        self.process = None

    def command(self):
        consumer = Path(sys.executable).with_name("huey_consumer")
        args = [
            str(consumer),
            "worker.huey",
            "-w",
            str(self.workers),
            "-k",
            "thread",
            "-s",
            "1",
            "-m",
            "0.25",
            "-g",
            GRACEFUL_SIGNAL.name.removeprefix("SIG"),
        ]
        if not self.periodic:
            args.append("-n")
        return args + self.extra_args

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(), cwd=self.cwd, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise RuntimeError(f"consumer exited at once; see {self.log_path}:\n{self.log_tail()}")
        return self

    def stop(self, timeout=15):
        """Graceful stop (SIGTERM lets running tasks finish)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(GRACEFUL_SIGNAL)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()

    def kill(self):
        """SIGKILL: the worker dies with whatever it holds."""
        self.process.kill()
        self.process.wait()
        self.log_file.close()

    def send_signal(self, signum):
        """Send `signum` and return at once (see wait())."""
        self.process.send_signal(signum)

    def wait(self, timeout):
        """Wait for the process to exit; its exit status."""
        status = self.process.wait(timeout)
        self.log_file.close()
        return status

    def log_tail(self, lines=60):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
