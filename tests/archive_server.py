"""Shared by the download tests: archives built in memory, and a local HTTP server on 127.0.0.1.

tests/test_download.py drives the server's failure modes (cut bodies, ignored Range, 5xx);
tests/test_paper_shapes.py serves the four public archives from it to a whole Snakemake run.
"""
from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours Range unless ``server.ignore_range``; can cut a body short."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((self.path, rng))
            status = srv.fail_status.pop(0) if srv.fail_status else None
            cut = srv.cut_after.pop(self.path, None)  # only the first request is cut
        if status is not None:
            self.send_error(status)
            return
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut is not None:
            # Send part of the body, then drop the connection.
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


def start_server() -> ThreadingHTTPServer:
    """A server on 127.0.0.1 (a free port) in a daemon thread: put bytes in ``srv.files[path]``,
    read ``srv.url(path)`` and ``srv.requests``; call ``srv.stop()`` when done. Callers keep
    127.0.0.1 out of any proxy from the environment (no_proxy), for themselves and subprocesses."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.files, srv.requests, srv.cut_after, srv.fail_status = {}, [], {}, []
    srv.ignore_range = False
    srv.url = lambda p: f"http://127.0.0.1:{srv.server_address[1]}{p}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()

    def stop():
        srv.shutdown()
        srv.server_close()
        thread.join(5)

    srv.stop = stop
    return srv


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()
