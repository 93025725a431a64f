"""python -m pyi2i.download dataset NAME [--dest ./datasets] [--from pix2pix|cyclegan]
python -m pyi2i.download model NAME [--dest ./checkpoints] [--from pix2pix|cyclegan]

Fetches the authors' datasets and pretrained generators from their server, as the original
release's download scripts do. A dataset lands in DEST/NAME/ (the archives hold a top-level NAME/
folder); a generator in DEST/NAME_pretrained/latest_net_G.pth, where the original's scripts put it.

PYI2I_DOWNLOAD_BASE=URL replaces the authors' server (a mirror, or a local server on an air-gapped
site) holding the same layout under URL:

    pix2pix/datasets/NAME.tar.gz      cyclegan/datasets/NAME.zip
    pix2pix/models-pytorch/NAME.pth   cyclegan/pretrained_models/NAME.pth

A name the original's scripts do not list is looked for in both layouts of its kind. Downloads go
to a .part file beside the destination and resume from it (HTTP Range) when run again. Archives are
checked, and refused if any member would land outside the destination, before anything is unpacked;
an archive is removed once unpacked, as the original's scripts do. An existing DEST/NAME is never
replaced: remove it, or choose another --dest, to download again.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from pyi2i.cli import console_script
from pyi2i.errors import UserError

log = logging.getLogger("pyi2i")

DEFAULT_BASE = "http://efrosgans.eecs.berkeley.edu"
BASE_ENV = "PYI2I_DOWNLOAD_BASE"
TIMEOUT_S = 60
CHUNK = 1 << 20
PART_SUFFIX = ".part"


@dataclass(frozen=True)
class Collection:
    """One of the authors' collections: what it holds, where under the base, and the names it lists."""
    kind: str  # "dataset" or "model"
    source: str  # "pix2pix" or "cyclegan"
    path: str  # under the base; {name} is replaced
    names: tuple[str, ...]

    def url(self, base: str, name: str) -> str:
        return f"{base}/{self.path.format(name=name)}"

    @property
    def suffix(self) -> str:
        return self.path[self.path.index("{name}") + len("{name}"):]


# The names the original's download scripts accept, in the order each kind's layouts are tried for
# other names. Cityscapes is listed by both dataset scripts, which then refuse it (see CITYSCAPES).
COLLECTIONS = (
    Collection("dataset", "pix2pix", "pix2pix/datasets/{name}.tar.gz",
               ("facades", "maps", "edges2shoes", "edges2handbags", "night2day")),
    Collection("dataset", "cyclegan", "cyclegan/datasets/{name}.zip",
               ("apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
                "ukiyoe2photo", "vangogh2photo", "maps", "facades", "iphone2dslr_flower", "ae_photos", "mini",
                "mini_pix2pix", "mini_colorization")),
    Collection("model", "cyclegan", "cyclegan/pretrained_models/{name}.pth",
               ("apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
                "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh",
                "sat2map", "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label",
                "facades_label2photo", "iphone2dslr_flower")),
    Collection("model", "pix2pix", "pix2pix/models-pytorch/{name}.pth",
               ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night")),
)
SOURCES = ("pix2pix", "cyclegan")
CITYSCAPES = ("the authors do not distribute cityscapes (its license forbids it): download "
              "gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from https://www.cityscapes-dataset.com "
              "and prepare them with the original release's datasets/prepare_cityscapes_dataset.py")
_DIFFERENCE = {"dataset": "pix2pix's holds aligned A|B images, CycleGAN's unpaired trainA/ and trainB/",
               "model": "pix2pix's is a unet_256 with batch norm, CycleGAN's a resnet_9blocks with instance norm"}
# A name becomes part of a URL and of a path under DEST, so it must stay one plain path component.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def download_base() -> str:
    """The server: PYI2I_DOWNLOAD_BASE, or the authors' server; without a trailing slash."""
    base = (os.environ.get(BASE_ENV) or DEFAULT_BASE).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise UserError(f"{BASE_ENV}={base} is not an http:// or https:// address: give the address of the server "
                        "(or mirror) under which pix2pix/ and cyclegan/ lie")
    return base


def known_names(kind: str) -> str:
    return "; ".join(f"{c.source}: {', '.join(c.names)}" for c in COLLECTIONS if c.kind == kind)


def locate(kind: str, name: str, base: str, source: str | None = None) -> tuple[Collection, str]:
    """The collection and URL of `name`. A known name goes to its collection's layout without asking
    the server; another name is looked for in each layout of its kind, and the first found wins."""
    if not _NAME.fullmatch(name):
        raise UserError(f"{name!r} is not a {kind} name: give one name such as horse2zebra, without folders")
    if kind == "dataset" and name == "cityscapes" and base == DEFAULT_BASE:
        raise UserError(CITYSCAPES)
    pool = [c for c in COLLECTIONS if c.kind == kind and source in (None, c.source)]
    known = [c for c in pool if name in c.names]
    if len(known) > 1:
        raise UserError(f"{name} is both a pix2pix and a CycleGAN {kind} ({_DIFFERENCE[kind]}): add --from pix2pix "
                        "or --from cyclegan")
    if known:
        return known[0], known[0].url(base, name)
    tried = []
    for collection in pool:
        url = collection.url(base, name)
        status = _probe(url)
        if status is None:
            log.info("%s is not among the %s names the original's scripts list; found it at %s", name, kind, url)
            return collection, url
        tried.append(f"{url} ({status})")
    raise UserError(f"no {kind} called {name} on {base} (tried {', '.join(tried)}). Known {kind}s: "
                    f"{known_names(kind)}")


def _probe(url: str) -> int | None:
    """None when `url` exists, else the HTTP status that said it does not."""
    status = None
    # Some servers refuse HEAD; a GET of the first byte then asks the same question.
    for method, headers in (("HEAD", {}), ("GET", {"Range": "bytes=0-0"})):
        try:
            with urlopen(Request(url, method=method, headers=headers), timeout=TIMEOUT_S):
                return None
        except HTTPError as e:
            status = e.code
            if e.code not in (405, 501):
                break
        except (URLError, OSError) as e:
            raise _unreachable(url, e) from e
    if status in (403, 404, 410):  # object stores answer 403 for a missing object
        return status
    raise _http_error(url, status)


def _unreachable(url: str, error: BaseException) -> UserError:
    reason = getattr(error, "reason", None) or error
    return UserError(f"cannot reach {url} ({reason}). Check the network connection; to use a mirror or a local "
                     f"copy, set {BASE_ENV} to its address (now {download_base()})")


def _http_error(url: str, status: int | None) -> UserError:
    hint = (f"is {BASE_ENV} ({download_base()}) a complete mirror of the authors' layout?"
            if os.environ.get(BASE_ENV) else f"the server no longer holds it there; set {BASE_ENV} to a mirror "
                                              "that does")
    phrase = http.client.responses.get(status, "")
    return UserError(f"{url} answered HTTP {status} {phrase}: {hint}")


def fetch(url: str, path: Path, check: Callable[[Path], None]) -> None:
    """Downloads `url` to `path` through PATH.part, resuming a .part left by an interrupted run.
    `check` raises UserError for a complete .part that is not what was asked for; the .part is then
    removed, so that the next run starts afresh."""
    part = path.with_name(path.name + PART_SUFFIX)
    _download(url, part)
    try:
        check(part)
    except UserError as e:
        part.unlink()
        raise UserError(f"the file downloaded from {url} {e}; it was removed, so the next run downloads it "
                        "afresh") from e
    part.replace(path)


def _download(url: str, part: Path) -> None:
    start = part.stat().st_size if part.exists() else 0
    request = Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urlopen(request, timeout=TIMEOUT_S)
    except HTTPError as e:
        if e.code == 416 and start:
            # Range starts at the end: the .part may already be whole (the server says its size).
            total = (e.headers.get("Content-Range") or "").rpartition("/")[2]
            if total == str(start):
                return
            log.warning("%s does not match the file on the server: downloading it again", part)
            part.unlink()
            return _download(url, part)
        raise _http_error(url, e.code) from e
    except (URLError, OSError) as e:
        raise _unreachable(url, e) from e
    with response:
        if start and response.status == 206 and _range_start(response) == start:
            log.info("resuming %s from %s bytes", url, f"{start:,}")
        else:
            if start:
                log.info("the server does not resume %s: downloading it from the start", url)
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        try:
            with open(part, "ab" if start else "wb") as f, \
                    tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=part.name[:-len(PART_SUFFIX)]) as bar:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise UserError(f"the download of {url} broke off after {part.stat().st_size:,} bytes ({e}): run the "
                            "same command again to resume it") from e
    size = part.stat().st_size
    if total is not None and size != total:
        raise UserError(f"the download of {url} ended after {size:,} of {total:,} bytes: run the same command "
                        "again to resume it")


def _range_start(response) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _escapes(name: str) -> str | None:
    """Why an archive member called `name` would be written outside the folder it is unpacked in, or None."""
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "an absolute path, outside the destination"
    if ".." in PurePosixPath(path).parts:
        return "a path through .., outside the destination"
    return None


def _unsafe_member(member: tarfile.TarInfo) -> str | None:
    why = _escapes(member.name)
    if why is None and (member.issym() or member.islnk()):
        # A symlink's target is relative to its own folder, a hard link's to the archive's top.
        target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(member.name),
                                                                        member.linkname)
        if _escapes(posixpath.normpath(target)):
            why = f"a link to {member.linkname}, outside the destination"
    if why is None and not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        why = "a device or pipe, which has no place in a dataset"
    return why


def _archive_kind(path: Path) -> tuple[str, str]:
    """("zip", "") or ("tar", tarfile's open mode), from the archive's name (with or without .part)."""
    name = path.name.removesuffix(PART_SUFFIX)
    if name.endswith(".zip"):
        return "zip", ""
    return "tar", "r:gz" if name.endswith((".tar.gz", ".tgz")) else "r:*"


def check_archive(path: Path) -> None:
    """Raises UserError unless `path` is a whole zip or tar archive whose every member stays inside the
    folder it is unpacked in."""
    kind, mode = _archive_kind(path)
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
                if damaged is not None:
                    raise UserError(f"is a damaged zip archive (its member {damaged} fails its checksum)")
                unsafe = [(name, _escapes(name)) for name in archive.namelist()]
        else:
            with tarfile.open(path, mode) as archive:
                unsafe = [(member.name, _unsafe_member(member)) for member in archive]
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"is not a readable {'zip' if kind == 'zip' else 'tar'} archive ({e})") from e
    for name, why in unsafe:
        if why:
            raise UserError(f"holds {name!r}, {why}: refused, nothing was unpacked")


def unpack(archive: Path, dest: Path, name: str) -> Path:
    """Unpacks a checked archive into DEST/NAME: its NAME/ folder when it has one, else all of it.
    The archive is unpacked in a hidden folder under DEST first, so that DEST/NAME appears whole or not at all."""
    target = dest / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".pyi2i-unpack", dir=dest))
    try:
        try:
            kind, mode = _archive_kind(archive)
            if kind == "zip":
                with zipfile.ZipFile(archive) as z:
                    z.extractall(staging)
            else:
                with tarfile.open(archive, mode) as t:
                    # The "data" filter (Python 3.11.4+) also refuses what check_archive refuses, and drops
                    # setuid bits and ownership; older Pythons rely on check_archive alone.
                    t.extractall(staging, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as e:
            raise UserError(f"{archive} could not be unpacked ({e}): delete it and run the same command again") from e
        except OSError as e:  # a full disk: the archive stays, so the next run need not download it again
            raise UserError(f"cannot unpack {archive} into {dest} ({e.strerror or e}): free some space there and "
                            "run the same command again") from e
        inner = staging / name
        unpacked = inner if inner.is_dir() else staging
        if unpacked is staging:
            log.warning("%s holds no top-level %s/ folder: all of its contents go to %s", archive, name, target)
            staging.chmod(0o755)  # mkdtemp's folder is private to its owner
        if target.exists():
            raise UserError(f"{target} appeared while {archive} was being unpacked: nothing replaced it")
        unpacked.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def check_weights(path: Path) -> None:
    """Raises UserError unless `path` holds a state dict that torch loads without running code."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"is not a PyTorch weights file ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError("is not a state dict of a network")


def download_dataset(name: str, dest: str | os.PathLike = "./datasets", source: str | None = None) -> Path:
    """Fetches and unpacks dataset `name` into DEST/NAME; returns that folder."""
    dest = Path(dest)
    target = dest / name
    _refuse_existing(target, "--dest")
    base = download_base()
    collection, url = locate("dataset", name, base, source)
    archive = dest / f"{name}{collection.suffix}"
    dest.mkdir(parents=True, exist_ok=True)
    if archive.exists():
        log.info("using %s, which is already here", archive)
        try:
            check_archive(archive)
        except UserError as e:
            raise UserError(f"{archive} {e}: delete it and run the same command again to download it anew") from e
    else:
        fetch(url, archive, check_archive)
    unpack(archive, dest, name)
    archive.unlink()
    return target


def download_model(name: str, dest: str | os.PathLike = "./checkpoints", source: str | None = None) -> Path:
    """Fetches generator `name` to DEST/NAME_pretrained/latest_net_G.pth; returns that file."""
    target = Path(dest) / f"{name}_pretrained" / "latest_net_G.pth"
    _refuse_existing(target, "--dest")
    _, url = locate("model", name, download_base(), source)
    target.parent.mkdir(parents=True, exist_ok=True)
    fetch(url, target, check_weights)
    return target


def _refuse_existing(path: Path, option: str) -> None:
    if path.exists():
        raise UserError(f"{path} already exists: nothing was downloaded. To download it again, remove or rename it, "
                        f"or give another {option}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyi2i.download", description=__doc__.split("\n\n")[1],
                                     allow_abbrev=False)
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind, dest, what in (("dataset", "./datasets", "DEST/NAME/"),
                             ("model", "./checkpoints", "DEST/NAME_pretrained/latest_net_G.pth")):
        command = kinds.add_parser(kind, help=f"download a {kind} to {what}", allow_abbrev=False,
                                   epilog=f"Known {kind}s ({known_names(kind)}). Other names are looked for on "
                                          f"the server. {BASE_ENV}=URL replaces {DEFAULT_BASE}.")
        command.add_argument("name", help=f"the {kind}'s name, as in the original release's download scripts")
        command.add_argument("--dest", default=dest, help=f"the {kind} goes to {what} (default {dest})")
        command.add_argument("--from", dest="source", choices=SOURCES,
                             help="the collection, for names that are in both (facades, maps, sat2map, ...)")
    args = parser.parse_args(argv)

    if args.kind == "dataset":
        path = download_dataset(args.name, args.dest, args.source)
        print(f"downloaded dataset {args.name} to {path}")
    else:
        path = download_model(args.name, args.dest, args.source)
        print(f"downloaded generator {args.name} to {path}\ntranslate images with it:  python -m pyi2i.translate "
              f"--checkpoint {path} --input IMAGES --output results/{args.name}_pretrained")


cli = console_script(main)

if __name__ == "__main__":
    cli()
