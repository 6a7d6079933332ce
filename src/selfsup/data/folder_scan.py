"""The recursive listing of a data folder: scanned once, in parallel, cached beside the data.

:func:`scan` lists every file with a wanted suffix below some folders of ``root`` (symbolic
links followed, each real folder once: the shallowest path to it, then the first in sorted
order), counting hidden entries (a name starting with ".") and files of another type. Folders
are read a level at a time by ``SCAN_THREADS`` threads (``os.scandir``: one system call per
folder, the file type from the directory entry, no ``stat`` per file), which hides the latency
of network and cold disks.

The cache: one JSON file per (root, suffixes) holding each folder's listing and the folder's
modification time (``st_mtime_ns``), which changes whenever an entry is added, removed or
renamed in it. A later scan ``stat``\\ s each folder it reaches and reuses its listing when that
time is unchanged, so an unchanged tree costs one ``stat`` per folder, and a changed folder is
listed again (only it: a new subfolder is found in its parent's new listing). A listing taken
less than ``RACY_SECONDS`` after its folder last changed is not reused (a change within the same
tick of the file system's clock would leave the time as it was; such a folder is listed again
on the next scan). A file changed in place keeps its folder's time: files are checked when
read, not here.

Where: ``$XDG_CACHE_HOME/selfsup/file-index/index-<root path + suffixes hash>.json``
(``~/.cache`` by default; never inside the data folder, which other tools such as
torchvision's ImageFolder read as they find it), else no cache. Processes that scan one root at once (the processes of
a DDP run) share the work: the first takes an exclusive lock (``flock`` on ``index-*.lock``
beside the cache file; the operating system releases it if that process dies), scans and writes
the cache; the others wait for the lock, then read the cache and only ``stat`` the folders.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

log = logging.getLogger(__name__)
CACHE_FORMAT = 1
RACY_SECONDS = 2.0  # a listing is reused only when its folder had not changed for this long before it
SCAN_THREADS = 16


@dataclass
class Listing:
    """One folder as listed: its mtime, when it was listed, wanted file names, subfolder names,
    hidden entries and other files."""

    mtime_ns: int
    listed_ns: int
    files: list[str]
    dirs: list[str]
    hidden: int
    other: int

    def reusable(self, mtime_ns: int) -> bool:
        return mtime_ns == self.mtime_ns and self.mtime_ns < self.listed_ns - int(RACY_SECONDS * 1e9)


@dataclass
class Scan:
    """Files (posix paths relative to the root, sorted) under each scanned folder; the listings
    reached; how many folders were listed rather than reused from the cache."""

    files: list[list[str]]
    listings: dict[str, Listing]
    skipped: Counter
    listed: int


def list_folder(path: str, suffixes: set[str]) -> tuple[tuple[int, int], Listing]:
    """((device, inode), listing) of one folder; OSError if it cannot be read."""
    listed = time.time_ns()
    st = os.stat(path)
    files, dirs, hidden, other = [], [], 0, 0
    with os.scandir(path) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                hidden += 1
            elif entry.is_dir():
                dirs.append(name)
            elif os.path.splitext(name)[1].lower() in suffixes:
                files.append(name)
            else:
                other += 1
    return (st.st_dev, st.st_ino), Listing(st.st_mtime_ns, listed, files, sorted(dirs), hidden, other)


def visit(root: Path, rel: str, suffixes: set[str], cached: Optional[Listing]):
    """(identity, listing, whether it was listed) of ``root / rel``, reusing ``cached`` when still
    valid; None if the folder cannot be read (a warning names it)."""
    path = os.path.join(root, rel)
    try:
        if cached is not None:
            st = os.stat(path)
            if cached.reusable(st.st_mtime_ns):
                return (st.st_dev, st.st_ino), cached, False
        return (*list_folder(path, suffixes), True)
    except OSError as err:
        log.warning("%s cannot be listed (%s): skipped", path, err)
        return None


def walk(root: Path, tops: list[str], suffixes: set[str], cache: dict[str, Listing]) -> Scan:
    """Every wanted file below each of ``tops`` (paths relative to ``root``, "" for the root)."""
    listings: dict[str, Listing] = {}
    skipped: Counter = Counter()
    listed, out = 0, []
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        for top in tops:
            found, seen, level = [], set(), [top]
            while level:
                deeper = []
                for rel, got in zip(level, pool.map(lambda r: visit(root, r, suffixes, cache.get(r)), level)):
                    if got is None or got[0] in seen:  # unreadable, or a link back to a folder already read
                        continue
                    seen.add(got[0])
                    listing, listed = got[1], listed + got[2]
                    listings[rel] = listing
                    prefix = rel + "/" if rel else ""
                    found += [prefix + name for name in listing.files]
                    deeper += [prefix + name for name in listing.dirs]
                    skipped["hidden"] += listing.hidden
                    skipped["other"] += listing.other
                level = deeper
            out.append(sorted(found))
    return Scan(out, listings, skipped, listed)


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selfsup" / "file-index"


def cache_paths(root: Path, suffixes: set[str]) -> list[Path]:
    """Where the cached index of ``root`` lies: the user's cache, keyed by the root's real path."""
    kinds = ",".join(sorted(suffixes))
    return [cache_home() / f"index-{digest(os.path.realpath(root), kinds)}.json"]


def read_cache(path: Path, suffixes: set[str]) -> dict[str, Listing]:
    """The listings in a cache file; empty when it is missing, unreadable or of another format."""
    try:
        values = json.loads(path.read_text())
        if values.get("format") != CACHE_FORMAT or values.get("suffixes") != sorted(suffixes):
            return {}
        return {rel: Listing(*fields) for rel, fields in values["folders"].items()}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def write_cache(path: Path, suffixes: set[str], listings: dict[str, Listing]) -> None:
    """Atomically (temp file + rename, so a reader sees the old or the new file)."""
    folders = {rel: [v.mtime_ns, v.listed_ns, v.files, v.dirs, v.hidden, v.other] for rel, v in listings.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"format": CACHE_FORMAT, "suffixes": sorted(suffixes), "folders": folders},
                              separators=(",", ":")))
    os.replace(tmp, path)


def stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a cache file: whether another process rewrote it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created), waiting for another holder; OSError if the
    file cannot be created (the folder is not writable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError as err:  # a file system without locks: each process scans on its own
            log.info("no lock on %s (%s): this process scans on its own", path, err)
        yield


def scan(root: Path, tops: list[str], suffixes: set[str]) -> Scan:
    """The files below each of ``tops`` (see the module docstring), from the cache where valid."""
    found, read = None, None
    for path in cache_paths(root, suffixes):
        if path.exists():
            read = (path, stamp(path))
            found = walk(root, tops, suffixes, read_cache(path, suffixes))
            if not found.listed:
                return found
            break
    for path in cache_paths(root, suffixes):
        try:
            with locked(path.with_suffix(".lock")):
                if found is None or read != (path, stamp(path)):  # another process may just have written it
                    found = walk(root, tops, suffixes, read_cache(path, suffixes))
                if found.listed:
                    write_cache(path, suffixes, found.listings)
                return found
        except OSError as err:
            log.info("file index not cached in %s (%s)", path.parent, err)
    return walk(root, tops, suffixes, {})
