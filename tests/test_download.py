"""python -m pyi2i.download against a local server that holds the authors' layout."""

import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from pyi2i import download
from pyi2i.cli import run_cli

FILES = {"trainA/0001.png": os.urandom(50_000), "trainB/0001.png": os.urandom(70_000), "testA/x.png": b"small"}


class MirrorHandler(BaseHTTPRequestHandler):
    """Serves the server's folder, honouring `Range: bytes=N-` and `bytes=N-M` with 206 as real servers do."""

    def sent_path(self):
        # http.server folds a leading // into /, which would hide a base URL joined with a double slash.
        return self.requestline.split()[1]

    def do_HEAD(self):
        if self.server.refuse_head:
            self.server.seen.append((self.command, self.sent_path(), None))
            self.send_error(405)
            return
        self.serve(body=False)

    def do_GET(self):
        self.serve(body=True)

    def serve(self, body):
        wanted = self.headers.get("Range")
        self.server.seen.append((self.command, self.sent_path(), wanted))
        path = self.server.root / self.path.lstrip("/")
        if "//" in self.sent_path() or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, end = 0, len(data) - 1
        if wanted:
            first, last = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted).groups()
            start, end = int(first), min(int(last), end) if last else end
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end + 1 - start))
        self.end_headers()
        if body:
            self.wfile.write(data[start:end + 1])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path_factory, monkeypatch):
    """A local mirror of the authors' server, set as PYI2I_DOWNLOAD_BASE; .root is its folder and .seen
    the (method, path, Range) of every request."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    httpd.root, httpd.seen, httpd.refuse_head = tmp_path_factory.mktemp("server"), [], False
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv(download.BASE_ENV, httpd.base)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def publish(root, relative, data):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members, links=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            t.addfile(info)
    return buf.getvalue()


def dataset_archive(name, kind):
    members = {f"{name}/{relative}": data for relative, data in FILES.items()}
    return zip_bytes(members) if kind == "zip" else tar_bytes(members)


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def cli(*args):
    return run_cli(lambda: download.main(list(map(str, args))))


def last_error(caplog):
    return caplog.records[-1].getMessage()


@pytest.mark.parametrize("name, layout, kind", [
    ("horse2zebra", "cyclegan/datasets/horse2zebra.zip", "zip"),
    ("edges2shoes", "pix2pix/datasets/edges2shoes.tar.gz", "tar"),
])
def test_dataset_lands_in_dest_name(server, tmp_path, name, layout, kind):
    publish(server.root, layout, dataset_archive(name, kind))
    assert cli("dataset", name, "--dest", tmp_path / "datasets") == 0
    assert tree(tmp_path / "datasets" / name) == FILES
    assert os.listdir(tmp_path / "datasets") == [name]  # archive removed, no .part or unpack folder left
    assert [request[:2] for request in server.seen] == [("GET", f"/{layout}")]  # a known name: no probing


def test_model_lands_in_pretrained_folder(server, tmp_path):
    weights = {"model.1.weight": torch.randn(4, 3, 7, 7)}
    buf = io.BytesIO()
    torch.save(weights, buf)
    publish(server.root, "cyclegan/pretrained_models/style_monet.pth", buf.getvalue())
    assert cli("model", "style_monet", "--dest", tmp_path / "checkpoints") == 0
    target = tmp_path / "checkpoints" / "style_monet_pretrained" / "latest_net_G.pth"
    assert torch.equal(torch.load(target, weights_only=True)["model.1.weight"], weights["model.1.weight"])
    assert os.listdir(target.parent) == ["latest_net_G.pth"]


@pytest.mark.parametrize("refuse_head", [False, True])
def test_unknown_name_found_in_the_second_layout(server, tmp_path, refuse_head):
    server.refuse_head = refuse_head
    publish(server.root, "cyclegan/datasets/mydata.zip", dataset_archive("mydata", "zip"))
    assert cli("dataset", "mydata", "--dest", tmp_path) == 0
    assert tree(tmp_path / "mydata") == FILES
    paths = [path for _, path, _ in server.seen]
    assert paths[0] == "/pix2pix/datasets/mydata.tar.gz" and paths[-1] == "/cyclegan/datasets/mydata.zip"
    assert not any("models" in p for p in paths)  # a dataset is looked for in the dataset layouts only


def test_unknown_model_found_in_the_second_layout(server, tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    publish(server.root, "pix2pix/models-pytorch/my_gen.pth", buf.getvalue())
    assert cli("model", "my_gen", "--dest", tmp_path) == 0
    assert (tmp_path / "my_gen_pretrained" / "latest_net_G.pth").is_file()
    assert [path for _, path, _ in server.seen][0] == "/cyclegan/pretrained_models/my_gen.pth"


def test_unknown_name_found_nowhere_lists_the_known_names(server, tmp_path, caplog):
    assert cli("dataset", "nosuchset", "--dest", tmp_path / "d") == 1
    message = last_error(caplog)
    assert "no dataset called nosuchset" in message and "horse2zebra" in message and "edges2handbags" in message
    assert "pix2pix/datasets/nosuchset.tar.gz (404)" in message and "cyclegan/datasets/nosuchset.zip (404)" in message
    assert not (tmp_path / "d" / "nosuchset").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    archive = publish(server.root, "cyclegan/datasets/mini.zip", dataset_archive("mini", "zip"))
    half = len(archive) // 2
    (tmp_path / "mini.zip.part").write_bytes(archive[:half])
    assert cli("dataset", "mini", "--dest", tmp_path) == 0
    assert ("GET", "/cyclegan/datasets/mini.zip", f"bytes={half}-") in server.seen
    assert tree(tmp_path / "mini") == FILES


def test_whole_part_file_is_used_without_downloading_again(server, tmp_path):
    archive = publish(server.root, "cyclegan/datasets/mini.zip", dataset_archive("mini", "zip"))
    (tmp_path / "mini.zip.part").write_bytes(archive)
    assert cli("dataset", "mini", "--dest", tmp_path) == 0
    assert server.seen == [("GET", "/cyclegan/datasets/mini.zip", f"bytes={len(archive)}-")]  # answered 416
    assert tree(tmp_path / "mini") == FILES


@pytest.mark.parametrize("archive", [
    zip_bytes({"evil/ok.txt": b"ok", "../outside.txt": b"escaped"}),
    tar_bytes({"evil/ok.txt": b"ok", "../outside.txt": b"escaped"}),
    tar_bytes({"evil/ok.txt": b"ok", "/tmp/outside.txt": b"escaped"}),
    tar_bytes({"evil/ok.txt": b"ok"}, links=[("evil/link", "../../outside.txt", tarfile.SYMTYPE)]),
    tar_bytes({"evil/ok.txt": b"ok"}, links=[("evil/hard", "../outside.txt", tarfile.LNKTYPE)]),
], ids=["zip dotdot", "tar dotdot", "tar absolute", "tar symlink", "tar hard link"])
def test_path_escaping_archive_is_refused(server, tmp_path, caplog, archive):
    layout = "cyclegan/datasets/evil.zip" if archive.startswith(b"PK") else "pix2pix/datasets/evil.tar.gz"
    publish(server.root, layout, archive)
    dest = tmp_path / "a" / "b"
    assert cli("dataset", "evil", "--dest", dest) == 1
    assert "refused" in last_error(caplog) and "outside" in last_error(caplog)
    assert os.listdir(dest) == []  # not unpacked; the download removed
    assert not any(p.name == "outside.txt" for p in tmp_path.rglob("*"))


def test_corrupt_archive_is_a_clear_error(server, tmp_path, caplog):
    publish(server.root, "cyclegan/datasets/horse2zebra.zip", b"<html>Service moved</html>")
    assert cli("dataset", "horse2zebra", "--dest", tmp_path) == 1
    message = last_error(caplog)
    assert "is not a readable zip archive" in message and "it was removed" in message
    assert os.listdir(tmp_path) == []


def test_corrupt_weights_are_a_clear_error(server, tmp_path, caplog):
    publish(server.root, "pix2pix/models-pytorch/day2night.pth", b"<html>Service moved</html>")
    assert cli("model", "day2night", "--dest", tmp_path) == 1
    assert "is not a PyTorch weights file" in last_error(caplog)
    assert not (tmp_path / "day2night_pretrained" / "latest_net_G.pth").exists()


def test_known_name_missing_from_the_mirror(server, tmp_path, caplog):
    assert cli("model", "style_vangogh", "--dest", tmp_path) == 1
    message = last_error(caplog)
    assert "style_vangogh.pth answered HTTP 404 Not Found" in message and download.BASE_ENV in message


def test_existing_destination_is_left_alone(server, tmp_path, caplog):
    publish(server.root, "cyclegan/datasets/mini.zip", dataset_archive("mini", "zip"))
    (tmp_path / "mini").mkdir()
    (tmp_path / "mini" / "mine.txt").write_text("the user's")
    assert cli("dataset", "mini", "--dest", tmp_path) == 1
    assert "already exists: nothing was downloaded" in last_error(caplog)
    assert tree(tmp_path) == {"mini/mine.txt": b"the user's"} and server.seen == []


def test_names_in_both_collections_need_from(server, tmp_path, caplog):
    publish(server.root, "pix2pix/datasets/facades.tar.gz", dataset_archive("facades", "tar"))
    assert cli("dataset", "facades", "--dest", tmp_path) == 1
    assert "--from pix2pix or --from cyclegan" in last_error(caplog) and server.seen == []
    assert cli("dataset", "facades", "--dest", tmp_path, "--from", "pix2pix") == 0
    assert tree(tmp_path / "facades") == FILES


def test_trailing_slash_on_the_base_is_tolerated(server, tmp_path, monkeypatch):
    monkeypatch.setenv(download.BASE_ENV, server.base + "/")
    publish(server.root, "pix2pix/datasets/maps.tar.gz", dataset_archive("maps", "tar"))
    assert cli("dataset", "maps", "--from", "pix2pix", "--dest", tmp_path) == 0
    assert server.seen[0][1] == "/pix2pix/datasets/maps.tar.gz"


def test_cityscapes_from_the_authors_server_says_where_to_get_it(monkeypatch):
    monkeypatch.delenv(download.BASE_ENV, raising=False)
    with pytest.raises(download.UserError, match="cityscapes-dataset.com"):
        download.locate("dataset", "cityscapes", download.download_base())


def test_names_that_would_leave_dest_are_refused(server, tmp_path, caplog):
    assert cli("dataset", "../up", "--dest", tmp_path) == 1
    assert "is not a dataset name" in last_error(caplog) and server.seen == []


def test_unreachable_server_exits_1_with_the_url_and_the_hint(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, download.BASE_ENV: f"http://127.0.0.1:{port}"}
    r = subprocess.run([sys.executable, "-m", "pyi2i.download", "dataset", "horse2zebra", "--dest", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"cannot reach http://127.0.0.1:{port}/cyclegan/datasets/horse2zebra.zip" in r.stderr
    assert download.BASE_ENV in r.stderr
    assert os.listdir(tmp_path) == []


def test_archive_already_in_dest_is_unpacked_without_downloading(server, tmp_path):
    (tmp_path / "mini.zip").write_bytes(dataset_archive("mini", "zip"))
    assert cli("dataset", "mini", "--dest", tmp_path) == 0
    assert tree(tmp_path / "mini") == FILES and server.seen == []
    assert os.listdir(tmp_path) == ["mini"]


def test_damaged_archive_already_in_dest_is_kept_and_named(server, tmp_path, caplog):
    (tmp_path / "mini.zip").write_bytes(dataset_archive("mini", "zip")[:-100])
    assert cli("dataset", "mini", "--dest", tmp_path) == 1
    assert "mini.zip is not a readable zip archive" in last_error(caplog) and "delete it" in last_error(caplog)
    assert os.listdir(tmp_path) == ["mini.zip"] and server.seen == []
