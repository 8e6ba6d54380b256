"""A real S3 API for the archive's tests (issue 17): moto's standalone server, started as a
separate process on 127.0.0.1 (not an in-process mock), that a test can stop (the process
killed) and start again on the same port."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SECRET = "s3cr3t-NEVER-LOGGED-4f1c9"
BUCKET = "cold"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._kept: dict[str, bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def archive_target(self):
        """The archive's destination in this server's bucket (a 1 s timeout: an outage
        is seen fast)."""
        from exporters.archive.remote import S3Target
        return S3Target.from_url(f"s3://{BUCKET}/otel/archive", endpoint=self.endpoint,
                                 timeout_s=1.0)

    def filesystem(self):
        import pyarrow.fs as pafs
        return pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                 region="us-east-1", allow_bucket_creation=True)

    def start(self) -> None:
        exe = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None, "moto_server ended"
                assert time.monotonic() < deadline, "moto_server did not listen"
                time.sleep(0.1)
        fs = self.filesystem()
        fs.create_dir(BUCKET)
        for key, body in (self._kept or {}).items():
            with fs.open_output_stream(key) as out:
                out.write(body)
        self._kept = None

    def stop(self, *, keep_objects: bool = False) -> None:
        """Kill the server. ``keep_objects``: the next ``start`` puts back, byte for byte,
        the objects the bucket held (moto keeps them in memory only; a real bucket keeps
        them through an outage of its endpoint)."""
        if self.proc is None:
            return
        if keep_objects:
            import pyarrow.fs as pafs
            fs = self.filesystem()
            self._kept = {}
            for info in fs.get_file_info(pafs.FileSelector(BUCKET, recursive=True)):
                if info.type == pafs.FileType.File:
                    with fs.open_input_stream(info.path) as src:
                        self._kept[info.path] = src.read()
        self.proc.kill()
        self.proc.wait()
        self.proc = None


@pytest.fixture
def moto(monkeypatch):
    """A moto server with the bucket ``cold``; credentials in the standard AWS variables
    (the secret one is ``SECRET``, which must never reach a log or a file)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    server = Moto()
    server.start()
    try:
        yield server
    finally:
        server.stop()
