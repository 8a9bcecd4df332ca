"""A small Hugging Face Hub-compatible server for tests (like moto for S3), on 127.0.0.1.

It speaks the endpoints the real ``huggingface_hub`` client uses to create a repo and a branch, commit
files (regular uploads, base64 in an ndjson commit), describe a repo and its tree, and download files
(``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with ``ETag`` and ``X-Repo-Commit``). Repos live in memory.
It stops by itself after ``lifetime`` seconds so a crashed test never leaves it running.

Run it alone (``python tests/hub_server.py``) to poke at it with the client by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

_REPO = r"(?P<repo>[^/]+/[^/]+)"
API = re.compile(rf"^/api/models/{_REPO}(?:/(?P<op>preupload|commit|paths-info|tree|revision|branch)/(?P<rest>.+))?$")
RESOLVE = re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


@dataclass
class Repo:
    private: bool = False
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: content}
    prs: int = 0

    def resolve(self, rev: str) -> str | None:
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.commits else None


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class HubState:
    """What the server holds; tests read it to check what was pushed."""

    def __init__(self, token: str | None = None, allow_create: bool = True) -> None:
        self.token = token
        self.allow_create = allow_create
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def create(self, repo_id: str, private: bool = False) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            empty = _sha(f"init {repo_id}".encode())
            self.repos[repo_id] = Repo(private=private, refs={"main": empty}, commits={empty: {}})
            return True

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.resolve(rev)]


class _Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    # ---- helpers --------------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        payload: object = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        head: bool = False,
    ) -> None:
        data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None, head: bool = False) -> None:
        self._send(
            status,
            {"error": message},
            {"X-Error-Code": code, "X-Error-Message": message} if code else {"X-Error-Message": message},
            head=head,
        )

    def _authorized(self) -> bool:
        if self.state.token is None:
            return True
        return self.headers.get("Authorization") == f"Bearer {self.state.token}"

    def _repo(self, repo_id: str, head: bool = False) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._error(404, f"Repository Not Found for url: {repo_id}", "RepoNotFound", head)
        return repo

    def _entry(self, path: str, data: bytes) -> dict[str, object]:
        return {"type": "file", "path": path, "size": len(data), "oid": _sha(data)}

    # ---- routes -------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_GET(self) -> None:
        self._get(head=False)

    def _get(self, head: bool) -> None:
        url = urlsplit(self.path)
        self.state.requests.append(f"{self.command} {url.path}")
        if m := RESOLVE.match(url.path):
            repo = self._repo(m["repo"], head)
            if repo is None:
                return
            rev = unquote(m["rev"])
            sha = repo.resolve(rev)
            if sha is None:
                return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound", head)
            files = repo.commits[sha]
            path = unquote(m["path"])
            if path not in files:
                return self._error(404, f"Entry not found: {path}", "EntryNotFound", head)
            data = files[path]
            return self._send(200, raw=data, head=head, headers={"ETag": f'"{_sha(data)}"', "X-Repo-Commit": sha})
        m = API.match(url.path)
        if not m or m["op"] not in (None, "revision", "tree"):
            return self._error(404, f"no route for GET {url.path}")
        repo = self._repo(m["repo"], head)
        if repo is None:
            return
        rest = m["rest"] or "main"
        rev, _, prefix = rest.partition("/") if m["op"] == "tree" else (rest, "", "")
        rev = unquote(rev)
        sha = repo.resolve(rev)
        if sha is None:
            return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound", head)
        files = repo.commits[sha]
        if m["op"] == "tree":
            prefix = unquote(prefix).strip("/")
            entries = [self._entry(p, d) for p, d in sorted(files.items()) if not prefix or p.startswith(prefix + "/")]
            return self._send(200, entries, head=head)
        info = {
            "id": m["repo"],
            "modelId": m["repo"],
            "sha": sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "tags": [],
            "siblings": [{"rfilename": p} for p in sorted(files)],
            "lastModified": "2025-01-01T00:00:00.000Z",
        }
        self._send(200, info, head=head)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        self.state.requests.append(f"POST {url.path}")
        body = self._body()
        write = (
            url.path == "/api/repos/create"
            or url.path.split("/")[-2:-1] in (["preupload"], ["commit"])
            or "/branch/" in url.path
        )
        if write and not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        if url.path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if url.path == "/api/repos/create":
            payload = json.loads(body or b"{}")
            repo_id = f"{payload.get('organization')}/{payload['name']}"
            if not self.state.allow_create:
                return self._error(403, f"You don't have the rights to create a model under {repo_id}")
            if not self.state.create(repo_id, payload.get("visibility") == "private"):
                return self._send(
                    409, {"error": "You already created this model repo", "url": f"{self.server.url}/{repo_id}"}
                )
            return self._send(200, {"url": f"{self.server.url}/{repo_id}", "name": repo_id})
        m = API.match(url.path)
        if not m or m["op"] not in ("preupload", "commit", "paths-info", "branch"):
            return self._error(404, f"no route for POST {url.path}")
        repo = self._repo(m["repo"])
        if repo is None:
            return
        rev = unquote(m["rest"])
        if m["op"] == "branch":
            if rev in repo.refs:
                return self._error(409, f"Reference already exists: {rev}")
            repo.refs[rev] = repo.refs["main"]
            return self._send(200, {})
        if m["op"] == "preupload":
            files = json.loads(body)["files"]
            return self._send(
                200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        if m["op"] == "paths-info":
            form = parse_qs(body.decode()) if body and not body.startswith(b"{") else {}
            paths = form.get("paths") or (json.loads(body).get("paths", []) if body.startswith(b"{") else [])
            sha = repo.resolve(rev)
            if sha is None:
                return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            files = repo.commits[sha]
            return self._send(200, [self._entry(p, files[p]) for p in paths if p in files])
        return self._commit(m["repo"], repo, rev, body, "create_pr" in parse_qs(url.query))

    def _commit(self, repo_id: str, repo: Repo, rev: str, body: bytes, create_pr: bool) -> None:
        base = repo.resolve(rev)
        if base is None:
            return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        files = dict(repo.commits[base])
        summary = ""
        for line in body.splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                summary = value.get("summary", "")
            elif item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                files = {p: d for p, d in files.items() if p != value["path"] and not p.startswith(value["path"] + "/")}
            else:
                return self._error(400, f"unsupported commit operation {item['key']!r} (LFS is not emulated)")
        sha = _sha(json.dumps([base, summary, sorted((p, _sha(d)) for p, d in files.items())]).encode())
        repo.commits[sha] = files
        pr_url = None
        if create_pr:
            repo.prs += 1
            repo.refs[f"refs/pr/{repo.prs}"] = sha
            pr_url = f"{self.server.url}/{repo_id}/discussions/{repo.prs}"
        else:
            repo.refs[rev] = sha
        self._send(
            200,
            {
                "commitUrl": f"{self.server.url}/{repo_id}/commit/{sha}",
                "commitOid": sha,
                "pullRequestUrl": pr_url,
                "success": True,
            },
        )


class HubServer(ThreadingHTTPServer):
    """``with HubServer() as hub: ... hub.url ...``; serves in a daemon thread, stops after ``lifetime`` s."""

    daemon_threads = True

    def __init__(self, token: str | None = None, allow_create: bool = True, lifetime: float = 300.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = HubState(token=token, allow_create=allow_create)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def start(self) -> HubServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self.shutdown()
        self.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def resolve_url(self, repo_id: str, path: str, rev: str = "main") -> str:
        return f"{self.url}/{repo_id}/resolve/{quote(rev, safe='')}/{path}"


if __name__ == "__main__":  # manual use: serve until Ctrl-C (or 10 minutes)
    with HubServer(lifetime=600) as hub:
        print(f"HF_ENDPOINT={hub.url}")
        try:
            hub._thread.join()
        except KeyboardInterrupt:
            pass
