"""A minimal Hugging Face Hub on 127.0.0.1, speaking the HTTP that huggingface_hub's snapshot_download uses.

The real client (pointed here with HF_ENDPOINT) raises its real error classes from
the status codes and X-Error-Code headers this server sends, so download's error
handling and token passing are tested without leaving the machine.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Repo:
    files: dict[str, bytes]
    gated_token: str | None = None  # when set, only this bearer token may read the repo


@dataclass
class FakeHub:
    repos: dict[str, Repo]
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, auth header)
    url: str = ""


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _repo(self, repo_id: str) -> Repo | None:
            auth = self.headers.get("Authorization")
            hub.requests.append((self.command, self.path, auth))
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._send(401, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound",
                                                                         "X-Error-Message": "Repository not found"})
                return None
            if repo.gated_token is not None and auth != f"Bearer {repo.gated_token}":
                status = 401 if auth is None else 403
                msg = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
                self._send(status, json.dumps({"error": msg}).encode(),
                           {"X-Error-Code": "GatedRepo", "X-Error-Message": msg})
                return None
            return repo

        def do_GET(self) -> None:
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/?]+)(\?.*)?", self.path)
            if m:
                repo = self._repo(m.group(1))
                if repo is not None:
                    info = {"id": m.group(1), "sha": SHA, "siblings": [{"rfilename": f} for f in repo.files]}
                    self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
                return
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path)
            if m:
                repo = self._repo(m.group(1))
                if repo is None:
                    return
                body = repo.files.get(m.group(3))
                if body is None:
                    self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                    return
                etag = hashlib.sha256(body).hexdigest()
                self._send(200, body, {"X-Repo-Commit": SHA, "ETag": f'"{etag}"'})
                return
            self._send(404)

        do_HEAD = do_GET

    return Handler


@contextmanager
def serve(repos: dict[str, Repo]) -> Iterator[FakeHub]:
    hub = FakeHub(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
