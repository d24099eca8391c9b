"""Starts the real ``ledgerd`` for the tests: 127.0.0.1, an ephemeral port, a temporary data
directory with three known clients. The binary is ``$LEDGERD_BIN`` when set (scripts/test-all
sets it), else ``target/debug/ledgerd`` built once with cargo."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

from ledger_client import Credentials

REPO = Path(__file__).resolve().parents[3]
PROTOCOL_MD = REPO / "protocol" / "PROTOCOL.md"

SECRETS = {
    "admin": ("admin", "admin-secret-0123456789abcdef"),
    "writer": ("transact", "writer-secret-0123456789abcdef"),
    "reader": ("read", "reader-secret-0123456789abcdef"),
}


def credentials(client_id: str) -> Credentials:
    role, secret = SECRETS[client_id]
    return Credentials(client_id, secret, role)


@pytest.fixture(scope="session")
def ledgerd_bin() -> Path:
    given = os.environ.get("LEDGERD_BIN")
    if given:
        path = Path(given)
        if not path.is_file():
            pytest.fail(f"LEDGERD_BIN={given} is not a file: build it with `cargo build -p server --bin ledgerd`")
        return path
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail("cargo is not installed: install Rust (https://rustup.rs) or set LEDGERD_BIN to a ledgerd binary")
    subprocess.run([cargo, "build", "-p", "server", "--bin", "ledgerd"], cwd=REPO, check=True)
    return REPO / "target" / "debug" / "ledgerd"


class Ledgerd:
    """A running ``ledgerd`` on a data directory of its own."""

    def __init__(self, binary: Path, data_dir: Path, extra: List[str]) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.extra = extra
        self.lines: List[str] = []
        self.process: Optional["subprocess.Popen[str]"] = None
        self.address = ""
        self._start()

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(self.binary), "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0",
                "--metrics-listen", "off", "--pin-core", "none", *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        found = threading.Event()

        def read(process: "subprocess.Popen[str]") -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("listening on "):
                    self.address = line[len("listening on ") :].strip()
                    found.set()
            found.set()

        threading.Thread(target=read, args=(self.process,), daemon=True).start()
        if not found.wait(60) or not self.address:
            self.kill9()
            pytest.fail("ledgerd did not start:\n" + "\n".join(self.lines))

    def send_sigterm(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(30)
        self.process = None
        return status

    def kill9(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None

    def restart(self) -> None:
        """A new process on the same data directory (after ``stop`` or ``kill9``)."""
        self.address = ""
        self._start()


@pytest.fixture
def server(ledgerd_bin: Path, tmp_path: Path) -> Iterator[Ledgerd]:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "credentials"
    path.write_text("".join(f"{cid} {role} {secret}\n" for cid, (role, secret) in SECRETS.items()))
    path.chmod(0o600)
    ledgerd = Ledgerd(ledgerd_bin, data, [])
    yield ledgerd
    ledgerd.kill9()


def wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
