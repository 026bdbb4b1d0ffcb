# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
A local stand-in for the Hugging Face Hub: the HTTP endpoints that `huggingface_hub` (2.x) calls to create a model
repository, upload a folder to it and download files from it again, served on 127.0.0.1 so that pushing and then
`from_pretrained("user/name")` with `HF_ENDPOINT` pointing here is a real round trip through the real client.

Implemented (model repositories only; every path below is relative to the server's root URL):

    POST /api/repos/create                               create_repo (409 when it exists: exist_ok handles it)
    POST /api/validate-yaml                              the README front-matter check of create_commit
    POST /api/models/{repo}/preupload/{revision}         upload modes: always "regular", so the file contents travel
                                                         base64-encoded inside the commit and no LFS/Xet storage is
                                                         needed; "oid" is the stored file's git blob sha1 so unchanged
                                                         files are skipped as on the Hub
    POST /api/models/{repo}/commit/{revision}            the ndjson commit: header, file (base64), deletedFile,
                                                         deletedFolder; "lfsFile" is refused (never asked for)
    GET  /api/models/{repo}[/revision/{revision}]        model_info / repo_info: id, sha, siblings, private, ...
    GET  /api/models/{repo}/tree/{revision}[/{path}]     list_repo_tree (one page; ?recursive=true for the subtree)
    POST /api/models/{repo}/paths-info/{revision}        get_paths_info
    POST /api/models/{repo}/branch/{branch}              create_branch (from main or "startingPoint")
    HEAD|GET /{repo}/resolve/{revision}/{path}           hf_hub_download: X-Repo-Commit, ETag (the blob's sha1),
                                                         Content-Length, and X-Error-Code on 404 (RepoNotFound,
                                                         RevisionNotFound, EntryNotFound) the way the client maps them

A revision is a branch name or a full commit sha. Each commit stores the whole tree (path -> bytes) in memory, so
any older commit stays downloadable. For tests to inspect: `server.repos`, `server.files(repo_id, revision)`,
`server.commits` (repo, branch, sha, message of each commit), `server.requests` (method, path, authorization header)
and `server.unhandled` (requests no route matched).

    with LocalHub() as hub:
        subprocess.run([...], env=hub_env(tmp_path, hub.url))      # a process that talks to it with empty caches

or, in a test module, `from hub_server import local_hub, hub_online  # noqa: F401` for the fixtures: `local_hub` runs
a server for the test; `hub_online` also points this process's huggingface_hub at it (for uploads; downloads
through diffusers/transformers read HF_ENDPOINT at import, so run those in a subprocess with `hub_env`).
"""

import base64
import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
REPO_ID = r"(?P<repo>[\w.-]+/[\w.-]+)"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what `git hash-object` prints and the Hub reports as a file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    """One model repository: branches pointing at commits, each commit a full tree."""

    def __init__(self, repo_id: str, private: bool):
        self.repo_id = repo_id
        self.private = private
        self.created_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        self.commits: Dict[str, Dict] = {}
        self.branches: Dict[str, str] = {}
        self.commit("main", "initial commit", {".gitattributes": GITATTRIBUTES}, parent=None)

    def commit(self, branch: str, message: str, files: Dict[str, bytes], parent: Optional[str]) -> str:
        digest = hashlib.sha1(json.dumps([parent, message, time.time_ns(), sorted(
            (path, git_blob_sha1(data)) for path, data in files.items())]).encode()).hexdigest()
        self.commits[digest] = {"files": files, "parent": parent, "message": message}
        self.branches[branch] = digest
        return digest

    def resolve(self, revision: str) -> Optional[str]:
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "LocalHubServer"

    def log_message(self, format, *args):  # quiet: tests read server.requests instead
        pass

    # ----------------------------------------------------------------------------------------- plumbing

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None, head: bool = False):
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: Optional[Dict[str, str]] = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, status: int, code: Optional[str], message: str, head: bool = False, commit: Optional[str] = None):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

    def _route(self, method: str):
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)  # groups are unquoted after matching: a revision may hold %2F
        self.server.requests.append(
            {"method": method, "path": url.path, "authorization": self.headers.get("Authorization")})
        body = self._body() if method in ("POST", "PUT", "DELETE") else b""
        routes = [
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("POST", rf"/api/models/{REPO_ID}/preupload/(?P<revision>.+)", self.preupload),
            ("POST", rf"/api/models/{REPO_ID}/commit/(?P<revision>.+)", self.commit),
            ("POST", rf"/api/models/{REPO_ID}/paths-info/(?P<revision>[^/]+)", self.paths_info),
            ("POST", rf"/api/models/{REPO_ID}/branch/(?P<branch>.+)", self.create_branch),
            ("GET", rf"/api/models/{REPO_ID}/tree/(?P<revision>[^/]+)(?:/(?P<subpath>.*))?", self.tree),
            ("GET", rf"/api/models/{REPO_ID}/revision/(?P<revision>[^/]+)", self.model_info),
            ("GET", rf"/api/models/{REPO_ID}", self.model_info),
            ("GET", rf"/{REPO_ID}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", self.resolve),
            ("HEAD", rf"/{REPO_ID}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", self.resolve),
            ("GET", r"/api/agent-harnesses", self.not_served),  # the client's user-agent registry: optional
        ]
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                with self.server.lock:
                    groups = {k: unquote(v) if v is not None else None for k, v in match.groupdict().items()}
                    return handler(body=body, query=query, head=method == "HEAD", **groups)
        self.server.unhandled.append((method, self.path))
        self._error(404, None, f"local hub: no route for {method} {url.path}", head=method == "HEAD")

    def do_GET(self):
        self._route("GET")

    def do_HEAD(self):
        self._route("HEAD")

    def do_POST(self):
        self._route("POST")

    def _repo(self, repo: str, head: bool = False) -> Optional[Repo]:
        found = self.server.repos.get(repo)
        if found is None:
            self._error(404, "RepoNotFound", f"Repository {repo} not found", head=head)
        return found

    def _revision(self, repo: Repo, revision: str, head: bool = False) -> Optional[str]:
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
        return sha

    def _snapshot(self, repo: str, revision: str, head: bool = False) -> Optional[Tuple[Repo, str, Dict[str, bytes]]]:
        """`(repo, commit sha, files)` at `revision`, or None after answering 404 for an unknown repo or revision."""
        found = self._repo(repo, head=head)
        if found is None:
            return None
        sha = self._revision(found, revision, head=head)
        if sha is None:
            return None
        return found, sha, found.commits[sha]["files"]

    # ----------------------------------------------------------------------------------------- endpoints

    def create_repo(self, body, **_):
        payload = json.loads(body)
        if payload.get("type", "model") != "model":
            return self._error(400, None, "local hub: only model repositories")
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        if repo_id in self.server.repos:  # the Hub names the existing repo's url, which exist_ok=True returns
            message = "You already created this model repo"
            return self._send(409, json.dumps({"error": message, "url": f"{self.server.url}/{repo_id}"}).encode(),
                              {"X-Error-Message": message})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.server.repos[repo_id] = Repo(repo_id, private=private)
        self._json(200, {"url": f"{self.server.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def not_served(self, **_):
        self._error(404, None, "local hub: not served")

    def create_branch(self, repo, branch, body, **_):
        found = self._repo(repo)
        if found is None:
            return
        if branch in found.branches:
            return self._error(409, None, f"Branch {branch} already exists")
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        sha = self._revision(found, start)
        if sha is not None:
            found.branches[branch] = sha
            self._json(200, {})

    def validate_yaml(self, body, **_):
        self._json(200, {"errors": [], "warnings": []})

    def preupload(self, repo, revision, body, **_):
        found = self._repo(repo)
        if found is None:
            return
        sha = found.resolve(revision)
        files = found.commits[sha]["files"] if sha else {}
        result = []
        for entry in json.loads(body)["files"]:
            stored = files.get(entry["path"])
            result.append({
                "path": entry["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha1(stored) if stored is not None else None,
            })
        self._json(200, {"files": result, "commitOid": sha})

    def commit(self, repo, revision, body, **_):
        found = self._repo(repo)
        if found is None:
            return
        if revision not in found.branches:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision} (commits go to an existing branch)")
        parent = found.branches[revision]
        files = dict(found.commits[parent]["files"])
        header = {}
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    return self._error(400, None, f"local hub: unsupported encoding {value.get('encoding')}")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    return self._error(404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: data for path, data in files.items() if not path.startswith(prefix)}
            else:  # lfsFile, file copies: never requested since preupload answers "regular"
                return self._error(400, None, f"local hub: unsupported commit operation {key!r}")
        if header.get("parentCommit") and header["parentCommit"] != parent:
            return self._error(412, None, "local hub: parentCommit is not the head of the branch")
        sha = found.commit(revision, header.get("summary", ""), files, parent=parent)
        self.server.commits.append({"repo": repo, "revision": revision, "sha": sha, "message": header.get("summary")})
        self._json(200, {"commitUrl": f"{self.server.url}/{repo}/commit/{sha}", "commitOid": sha,
                         "success": True, "pullRequestUrl": None})

    def model_info(self, repo, revision="main", **_):
        snapshot = self._snapshot(repo, revision)
        if snapshot is None:
            return
        found, sha, files = snapshot
        self._json(200, {
            "id": repo, "modelId": repo, "author": repo.split("/")[0], "sha": sha, "private": found.private,
            "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
            "createdAt": found.created_at, "lastModified": found.created_at,
            "siblings": [{"rfilename": path, "size": len(data), "blobId": git_blob_sha1(data)}
                         for path, data in sorted(files.items())],
        })

    def _entries(self, files: Dict[str, bytes], prefix: str, recursive: bool) -> List[dict]:
        entries, folders = [], set()
        for path, data in sorted(files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1:] if prefix else path
            parts = rest.split("/")
            for depth in range(1, len(parts)):  # every folder on the way (only the first level unless recursive)
                if depth > 1 and not recursive:
                    break
                folders.add("/".join(([prefix] if prefix else []) + parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append({"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)})
        for folder in sorted(folders):
            entries.append({"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest()})
        return entries

    def tree(self, repo, revision, query, subpath=None, **_):
        snapshot = self._snapshot(repo, revision)
        if snapshot is None:
            return
        _, _, files = snapshot
        prefix = (subpath or "").strip("/")
        if prefix and not any(path.startswith(prefix + "/") for path in files):
            return self._error(404, "EntryNotFound", f"{prefix} does not exist on {revision}")
        recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
        self._json(200, self._entries(files, prefix, recursive))

    def paths_info(self, repo, revision, body, **_):
        snapshot = self._snapshot(repo, revision)
        if snapshot is None:
            return
        _, _, files = snapshot
        form = parse_qs(body.decode())
        paths = form.get("paths", [])
        if not paths and body.strip().startswith(b"{"):
            paths = json.loads(body).get("paths", [])
        result = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                result.append({"type": "file", "path": path, "size": len(files[path]), "oid": git_blob_sha1(files[path])})
            elif any(p.startswith(path + "/") for p in files):
                result.append({"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()})
        self._json(200, result)

    def resolve(self, repo, revision, filename, head, **_):
        snapshot = self._snapshot(repo, revision, head=head)
        if snapshot is None:
            return
        _, sha, files = snapshot
        data = files.get(filename)
        if data is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist on {revision}", head=head, commit=sha)
        oid = git_blob_sha1(data)
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": sha, "ETag": f'"{oid}"',
                   "Content-Length": str(len(data)), "Accept-Ranges": "bytes"}
        self._send(200, data, headers, head=head)


class LocalHubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.lock = threading.Lock()
        self.repos: Dict[str, Repo] = {}
        self.requests: List[dict] = []
        self.commits: List[dict] = []
        self.unhandled: List[tuple] = []

    def files(self, repo_id: str, revision: str = "main") -> Dict[str, bytes]:
        """The tree of `repo_id` at `revision` (path -> bytes)."""
        repo = self.repos[repo_id]
        return repo.commits[repo.resolve(revision)]["files"]


class LocalHub:
    """Runs a [`LocalHubServer`] on a random port of 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self):
        self.server = LocalHubServer()
        self.url = self.server.url
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-hub", daemon=True)

    def __enter__(self) -> LocalHubServer:
        self._thread.start()
        return self.server

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def hub_env(tmp_path, endpoint: str, offline: str = "0") -> Dict[str, str]:
    """The environment of a subprocess that talks to the Hub at `endpoint` with empty caches under `tmp_path` (no token
    of the user's, no offline mode unless `offline="1"`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_CACHE", "HF_MODULES_CACHE")}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_OFFLINE=offline, HF_HOME=str(tmp_path / "hf_home"),
               HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    return env


@pytest.fixture
def local_hub():
    """A [`LocalHubServer`] for the test (its `url`, `repos`, `commits`, `requests`, `files(repo_id, revision)`)."""
    with LocalHub() as server:
        yield server


@pytest.fixture
def hub_online(local_hub, monkeypatch):
    """`local_hub`, with this process's huggingface_hub pointed at it and the tests' offline mode lifted."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", local_hub.url)
    template = local_hub.url + "/{repo_id}/resolve/{revision}/{filename}"  # download URLs: built from it
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    return local_hub


if __name__ == "__main__":  # python tests/hub_server.py: serve until interrupted
    with LocalHub() as hub:
        print(f"HF_ENDPOINT={hub.url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
