"""The files of a folder dataset (``image-folder``, ``video-folder``), their labels, and the
dataset that decodes them on load.

Files are found recursively under ``data.root`` (symbolic links followed, each real folder
once), in sorted order of their path relative to the root. Hidden files and folders (a name
starting with ".") and files of another type (by suffix) are skipped and counted, never fatal.
The listing is scanned in parallel and cached in the user's cache (never in the data folder), shared
by the processes of a DDP run and listed again only where a folder changed
(:mod:`selfsup.data.folder_scan`); no file is opened before it is loaded.

Labels, the conventions of torchvision's ImageFolder and lightly:
- the class of a file is the first folder level under the root (or under ``train/``,
  ``test/``); files lying directly at the root of a labelled folder are unlabelled (-1) and
  still used for self-supervised training; a folder with no subfolder is all unlabelled;
- ``data.labels=<file.csv>`` labels any layout instead: columns ``path,label`` (a header row
  naming them; other columns ignored), paths relative to the root, an empty label meaning
  unlabelled, files not listed unlabelled too. Label strings become class ids in sorted order
  (numeric order when every label is an integer). A listed path that is not among the found
  files, or one listed twice, is an error naming its row.

A root holding ``train/`` reads only ``train/`` and ``test/`` (or, without ``test/``, ``val/``)
as the two splits; without either, the builder holds out a seeded ``data.test_fraction``.

A file that cannot be decoded on load is an error naming it and the fix, or, with
``data.skip_bad=true``, replaced by the next readable sample of the split (its input and
label; ``targets``, read by position, stay the skipped file's) and named once per process in a
warning: batches keep their size in every worker process, in training and evaluation alike.
"""
from __future__ import annotations

import csv
import logging
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import torch

from selfsup.data.base import UNLABELLED, IndexedDataset
from selfsup.data.folder_scan import scan
from selfsup.data.registry import DatasetNotFound

log = logging.getLogger(__name__)


class UnreadableFile(ValueError):
    """A file that cannot be decoded; the message names it and the fix."""

    def __init__(self, what: str, path: Path, err: BaseException, hint: str = ""):
        super().__init__(f"cannot read {what} {path}: {err}{hint}. Remove or replace the file, "
                         "or set data.skip_bad=true to skip unreadable files")


class FileDataset(IndexedDataset):
    """Samples decoded from ``root / paths[i]`` when loaded. Subclasses give ``read(i)`` (one
    input, raising UnreadableFile) and ``options()`` (their own constructor arguments, passed
    after ``root, paths, labels, targets, skip_bad``)."""

    reads_files = True

    def __init__(self, root: Path, paths: list[str], labels, targets: dict | None, skip_bad: bool):
        self.root, self.paths = Path(root), list(paths)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.targets = dict(targets or {})
        self.skip_bad = bool(skip_bad)
        self.bad: set[int] = set()  # found unreadable in this process

    def read(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def options(self) -> dict:
        raise NotImplementedError

    def read_or_next(self, i: int) -> tuple[int, torch.Tensor]:
        """(index actually read, its input): ``i``, or with skip_bad the next readable sample."""
        n = len(self.paths)
        for j in ((i + step) % n for step in range(n)):
            if j in self.bad:
                continue
            try:
                return j, self.read(j)
            except UnreadableFile as err:
                if not self.skip_bad:
                    raise
                self.bad.add(j)
                log.warning("data.skip_bad: skipped %s, replaced by the next readable sample (%d unreadable in "
                            "this process so far): %s", self.paths[j], len(self.bad), err.__cause__)
        raise DatasetNotFound(f"none of the {n} files of this split under {self.root} can be decoded")

    def __getitems__(self, indices):
        read = [self.read_or_next(int(i)) for i in indices]
        used = torch.tensor([j for j, _ in read], dtype=torch.long)
        return torch.stack([x for _, x in read]), self.labels[used]

    def load(self, indices: torch.Tensor) -> torch.Tensor:
        return self.__getitems__(indices.tolist())[0]

    def take(self, indices) -> "FileDataset":
        index = torch.as_tensor(indices, dtype=torch.long)
        return type(self)(self.root, [self.paths[i] for i in index.tolist()], self.labels[index],
                          {k: v[index] for k, v in self.targets.items()}, self.skip_bad, **self.options())

    def with_labels(self, labels: torch.Tensor) -> "FileDataset":
        return type(self)(self.root, self.paths, labels, self.targets, self.skip_bad, **self.options())


@dataclass
class FileIndex:
    """Files (posix paths relative to ``root``) of the training split and, when the folder has
    one, of the test split, with their labels and the class names."""

    root: Path
    train: list[str]
    train_labels: list[int]
    test: list[str] | None = None
    test_labels: list[int] | None = None
    class_names: list[str] = field(default_factory=list)


def class_folder(path: str, depth: int) -> str | None:
    """The folder of ``path`` at level ``depth`` (0: first level under the root), or None for a
    file lying directly in the folder at that level."""
    parts = path.split("/", depth + 1)
    return parts[depth] if len(parts) > depth + 1 else None


def folder_labels(paths: list[str], depth: int, classes: list[str]) -> list[int]:
    """The class id of each path by :func:`class_folder`, -1 (unlabelled) without one."""
    ids = {name: k for k, name in enumerate(classes)}
    ids[None] = UNLABELLED
    return [ids[class_folder(p, depth)] for p in paths]


def folder_classes(paths: list[str], depth: int) -> set[str]:
    return {class_folder(p, depth) for p in paths} - {None}


def class_order(names: set[str]) -> list[str]:
    """Sorted; in numeric order when every name is an integer."""
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def relative_path(text: str, root: Path) -> str:
    """A path as written in a labels CSV -> posix path relative to root ('' if outside it)."""
    text = text.strip().replace("\\", "/")
    if posixpath.isabs(text):
        try:
            text = Path(text).relative_to(root).as_posix()
        except ValueError:
            return ""
    norm = posixpath.normpath(text)
    return "" if norm.startswith("../") or norm in ("..", ".") else norm


def read_labels_csv(csv_path: Path, root: Path, known: set[str], what: str) -> dict[str, str]:
    """``path -> label string`` ('' = unlabelled) from a ``path,label`` CSV, checked against the
    files found under ``root``."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"data.labels {csv_path} cannot be read ({err}); give a CSV file with the columns "
                         "path,label") from err
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "path" not in header or "label" not in header:
        raise ValueError(f"data.labels {csv_path} must start with a header row naming the columns path,label "
                         f"(found {rows[0] if rows else 'an empty file'})")
    col_path, col_label = header.index("path"), header.index("label")
    labels: dict[str, str] = {}
    first_row: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(col_path, col_label):
            raise ValueError(f"data.labels {csv_path} row {number}: {len(row)} column(s), expected path,label")
        path = relative_path(row[col_path], root)
        if path not in known:
            raise ValueError(f"data.labels {csv_path} row {number}: {row[col_path]!r} is not one of the {what} "
                             f"files under data.root {root} (paths are relative to data.root; hidden files are "
                             "skipped)")
        if path in labels:
            raise ValueError(f"data.labels {csv_path} row {number}: {row[col_path]!r} is listed twice "
                             f"(first at row {first_row[path]}); give each file one row")
        labels[path], first_row[path] = row[col_label].strip(), number
    return labels


def index_folder(root: Path, suffixes: set[str], labels_csv: str | None, what: str) -> FileIndex:
    """The files and labels of a folder dataset (see the module docstring); ``what`` names the
    files in messages ("image", "video")."""
    if not root.is_dir():
        raise DatasetNotFound(f"data.root {root} is not a folder")
    split_folders = (root / "train").is_dir()
    test_dir = next((n for n in ("test", "val") if (root / n).is_dir()), None) if split_folders else None
    tops = ["train"] + ([test_dir] if test_dir else []) if split_folders else [""]
    found = scan(root, tops, suffixes)
    train, test, depth = found.files[0], found.files[1] if test_dir else None, int(split_folders)
    skipped = found.skipped
    if labels_csv:
        table = read_labels_csv(Path(labels_csv).expanduser(), root, set(train) | set(test or []), what)
        classes = class_order({v for v in table.values() if v})
        ids = {name: k for k, name in enumerate(classes)}

        def label_of(paths: list[str]) -> list[int]:
            return [ids[table[p]] if table.get(p) else UNLABELLED for p in paths]

        source = f"data.labels {labels_csv}"
    else:
        classes = class_order(folder_classes(train + (test or []), depth))

        def label_of(paths: list[str]) -> list[int]:
            return folder_labels(paths, depth, classes)

        source = "class folders"
    index = FileIndex(root, train, label_of(train), test, label_of(test) if test is not None else None, classes)
    every = index.train_labels + (index.test_labels or [])
    unlabelled = sum(label == UNLABELLED for label in every)
    log.info("%s: %d %s file(s), %d labelled in %d class(es) by %s, %d unlabelled; skipped %d hidden and %d "
             "non-%s file(s); %d of %d folder(s) listed, the others from the cached index", root, len(every), what,
             len(every) - unlabelled, len(classes), source, unlabelled, skipped["hidden"], skipped["other"], what,
             found.listed, len(found.listings))
    return index
