"""A user's own images as a dataset like the study's: what `backbone-bench recommend` reads.

Three layouts, as users have them:
  folder   one subfolder per class, images at any depth below it (or train/ val/ test/ folders,
           each holding class folders, which are then used as the splits);
  csv      a file with the columns ``path,label`` (and optionally ``split``); relative paths are
           relative to the CSV's folder;
  parquet  a .parquet file, or a folder of them, in the Hugging Face image layout (an ``image``
           struct of bytes and a ``label`` string or ClassLabel integer).
``scan`` lists what is there before anything is decoded: it names what it ignores and refuses
inputs a split cannot be made from. ``LocalImages`` is the registry source that prepare reads;
the entry is written to a JSON file so worker processes register the same dataset.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from backbone_bench.data.registry import FINDERS, USER_DOMAIN, DatasetSpec, register
from backbone_bench.data.sources import IMAGE_SUFFIXES, RawImage, _read_parquet
from backbone_bench.errors import BenchError, DataMissingError

# A class needs images in test (20 %), validation (10 % of the rest) and training: with 15, a
# stratified split gives it about 3, 1 and 11.
MIN_PER_CLASS = 15
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}
ENV = "BACKBONE_BENCH_USER_DATASETS"  # JSON files of user datasets, os.pathsep separated


class InputError(BenchError, ValueError):
    """The user's images cannot become a dataset; the message says why and what to do."""


@dataclass
class Listing:
    """What ``scan`` found: the images it will read, and everything it will not, by reason."""
    path: str
    kind: str                                       # folder | csv | parquet
    items: list = field(default_factory=list)       # (split, label, file) for folder/csv
    files: list = field(default_factory=list)       # parquet files
    labels: Counter = field(default_factory=Counter)
    class_names: tuple | None = None                # parquet ClassLabel names
    not_images: list = field(default_factory=list)  # files ignored for their type
    outside_classes: list = field(default_factory=list)  # images not inside a class folder
    missing: list = field(default_factory=list)     # CSV rows naming a file that does not exist

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(self.labels))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def scan(path) -> Listing:
    """List the input without decoding it; refuse what cannot be a classification dataset."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataMissingError(f"{path}: no such file or folder. Give an image folder (one subfolder per class), "
                               "a CSV of path,label or a Parquet file.")
    if path.is_file():
        kinds = {".csv": _scan_csv, ".parquet": _scan_parquet}
        if path.suffix.lower() not in kinds:
            raise InputError(f"{path}: a {path.suffix or 'suffix-less'} file is not an input this command reads; "
                             "give a folder of class folders, a .csv of path,label or a .parquet file.")
        listing = kinds[path.suffix.lower()](path, [path] if path.suffix.lower() == ".parquet" else None)
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file())   # one walk serves both layouts
        visible = [p for p in files if _visible(p, path)]
        parquet = [p for p in visible if p.suffix == ".parquet"]
        has_images = any(_is_image(p) for p in files)
        listing = _scan_parquet(path, parquet) if parquet and not has_images else _scan_folder(path, visible)
    check_counts(listing.labels, f"{path}")
    return listing


def _scan_folder(root: Path, files: list[Path]) -> Listing:
    """``files``: the visible files below ``root``, sorted (so each class's files come together)."""
    listing = Listing(str(root), "folder")
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not top:
        raise InputError(f"{root}: no class folders. Put each class's images in a subfolder named after the class "
                         f"({root}/cat/..., {root}/dog/...), or give a CSV of path,label.")
    split_layout = all(p.name.lower() in SPLIT_FOLDERS for p in top)
    depth = 1 + split_layout                     # the class folder's place in a file's relative path
    outside = []
    for file in files:
        parts = file.relative_to(root).parts
        if len(parts) <= depth:                  # not below a class folder
            outside.append(file)
        elif not _is_image(file):
            listing.not_images.append(str(file.relative_to(root)))
        else:
            split = SPLIT_FOLDERS[parts[0].lower()] if split_layout else "train"
            listing.items.append((split, parts[depth - 1], file))
            listing.labels[parts[depth - 1]] += 1
    for file in outside:
        (listing.outside_classes if _is_image(file) else listing.not_images).append(str(file.relative_to(root)))
    return listing


def _scan_csv(file: Path, _=None) -> Listing:
    import pandas as pd

    try:
        table = pd.read_csv(file, dtype=str, keep_default_na=False)
    except Exception as err:
        raise InputError(f"{file}: not a readable CSV ({type(err).__name__}: {err}).") from None
    table.columns = [c.strip().lower() for c in table.columns]
    if not {"path", "label"} <= set(table.columns):
        raise InputError(f"{file}: the CSV needs a header with the columns path,label (found: "
                         f"{', '.join(table.columns) or 'none'}).")
    listing = Listing(str(file), "csv")
    splits = table["split"].str.lower().map(SPLIT_FOLDERS) if "split" in table else None
    for i, row in table.iterrows():
        image = Path(row["path"]).expanduser()
        image = image if image.is_absolute() else file.parent / image
        if not row["label"].strip():
            raise InputError(f"{file}, row {i + 2}: empty label for {row['path']!r}; give every row a label.")
        if not image.is_file():
            listing.missing.append(f"row {i + 2}: {row['path']}")
        elif not _is_image(image):
            listing.not_images.append(row["path"])
        else:
            split = splits.iloc[i] if splits is not None and isinstance(splits.iloc[i], str) else "train"
            listing.items.append((split, row["label"].strip(), image))
            listing.labels[row["label"].strip()] += 1
    if len(table) and not listing.items and len(listing.missing) == len(table):
        raise InputError(f"{file}: {len(table)} of {len(table)} rows name files that do not exist (e.g. "
                         f"{listing.missing[0]}); paths are read as written, relative ones from the CSV's folder "
                         f"({file.parent}).")
    return listing


def _class_names(file: Path, column: str) -> tuple | None:
    """ClassLabel names from the Hugging Face metadata a Parquet file carries, if any."""
    import pyarrow.parquet as pq

    meta = (pq.read_schema(file).metadata or {}).get(b"huggingface")
    if not meta:
        return None
    feature = json.loads(meta).get("info", {}).get("features", {}).get(column, {})
    return tuple(feature["names"]) if "names" in feature else None


def _split_of(file: Path) -> str:
    """Hugging Face names Parquet shards ``<split>-00000-of-00001.parquet`` (or puts them in <split>/)."""
    for part in [file.stem.split("-")[0]] + list(reversed(file.parent.parts)):
        if part.lower() in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[part.lower()]
    return "train"


def _scan_parquet(path: Path, files) -> Listing:
    import pyarrow.parquet as pq

    listing = Listing(str(path), "parquet", files=list(files))
    for file in files:
        try:
            schema = pq.read_schema(file)
        except Exception as err:
            raise InputError(f"{file}: not a readable Parquet file ({type(err).__name__}: {err}).") from None
        if not {"image", "label"} <= set(schema.names):
            raise InputError(f"{file}: expected the Hugging Face image layout with columns image and label "
                             f"(found: {', '.join(schema.names)}).")
        names = _class_names(file, "label")
        listing.class_names = listing.class_names or names
        for label in pq.read_table(file, columns=["label"]).column("label").to_pylist():
            listing.labels[names[int(label)] if names and not isinstance(label, str) else str(label)] += 1
    return listing


def check_counts(counts: Counter, where: str) -> None:
    """Refuse a single class, or a class too small for a test, validation and training split."""
    if len(counts) == 0:
        raise InputError(f"{where}: no images found (suffixes read: {', '.join(IMAGE_SUFFIXES)}, any case).")
    if len(counts) == 1:
        raise InputError(f"{where}: only one class ({next(iter(counts))!r}); a classifier needs at least two. "
                         "Add a folder (or CSV label) per class.")
    small = {c: n for c, n in sorted(counts.items()) if n < MIN_PER_CLASS}
    if small:
        raise InputError(f"{where}: {len(small)} class(es) have fewer than {MIN_PER_CLASS} usable images, the "
                         f"minimum for a test, a validation and a training split per class: "
                         + ", ".join(f"{c!r} ({n})" for c, n in small.items())
                         + ". Add images to them, or remove those classes.")


@dataclass(frozen=True)
class LocalImages:
    """The source of a user dataset: the files ``scan`` lists, read in its order."""
    path: str
    kind: str
    download = False

    def describe(self) -> str:
        return f"your {self.kind} {self.path}"

    def locate(self) -> Path | None:
        return Path(self.path) if Path(self.path).exists() else None

    def _listing(self) -> Listing:
        return scan(self.path)

    def files_of(self, where: Path) -> list[Path]:
        listing = self._listing()
        extra = [Path(self.path)] if listing.kind == "csv" else []
        return extra + (listing.files if listing.kind == "parquet" else [f for _, _, f in listing.items])

    def read(self, where: Path) -> Iterator[RawImage]:
        listing = self._listing()
        if listing.kind == "parquet":
            for file in listing.files:
                names = _class_names(file, "label")
                for raw in _read_parquet({_split_of(file): [file]}, "image", "label", names):
                    yield raw
            return
        base = Path(self.path) if listing.kind == "folder" else Path(self.path).parent
        for split, label, file in listing.items:
            name = str(file.relative_to(base)) if file.is_relative_to(base) else str(file)
            yield RawImage(split, label, file.read_bytes(), name)


def slug(path) -> str:
    stem = Path(path).stem if Path(path).is_file() else Path(path).resolve().name
    return "user_" + (re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "data")


def make_spec(listing: Listing, out: Path, flip_ok: bool = True, storage_size: int = 256) -> DatasetSpec:
    """The registry entry for the listed input, registered here and written to ``out/dataset.json``."""
    out = Path(out)
    classes = tuple(c for c in (listing.class_names or ()) if c in listing.labels) or listing.classes
    entry = dict(name=slug(listing.path), path=str(Path(listing.path).resolve()), kind=listing.kind,
                 classes=list(classes), flip_ok=flip_ok, storage_size=storage_size,
                 prepared_root=str((out / "prepared").resolve()))
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset.json").write_text(json.dumps(entry, indent=1) + "\n")
    return register(_spec(entry))


def _spec(entry: dict) -> DatasetSpec:
    return DatasetSpec(name=entry["name"], domain=USER_DOMAIN, classes=tuple(entry["classes"]),
                       sources=(LocalImages(entry["path"], entry["kind"]),), flip_ok=entry["flip_ok"],
                       storage_size=entry["storage_size"], prepared_root=entry["prepared_root"],
                       description=f"Your images: {entry['kind']} {entry['path']}.",
                       curation="Pixel-identical copies removed; test images with a near-duplicate in training "
                                "or validation taken out of test (as in the study).")


def registered_from_env() -> None:
    for file in filter(None, os.environ.get(ENV, "").split(os.pathsep)):
        if Path(file).exists():
            register(_spec(json.loads(Path(file).read_text())))


FINDERS.append(registered_from_env)


MODE_NAMES = {"L": "grayscale", "LA": "grayscale with alpha", "1": "black and white (1 bit)", "P": "palette",
              "RGBA": "RGBA", "CMYK": "CMYK", "I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit",
              "I;16N": "16-bit", "I": "32-bit integer", "F": "32-bit float", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}
CONVERSIONS = {"16-bit": "scaled by its own range to 8 bits, then RGB", "32-bit integer": "scaled by its own range, then RGB",
               "32-bit float": "scaled by its own range, then RGB", "RGBA": "alpha dropped, RGB kept",
               "grayscale with alpha": "alpha dropped, gray repeated in R, G, B", "palette": "palette applied, RGB", "grayscale": "gray repeated in R, G, B",
               "CMYK": "to RGB (PIL's conversion, no colour profile)"}


def _examples(names, k: int = 3) -> str:
    names = list(names)
    return "; ".join(names[:k]) + (f"; and {len(names) - k} more" if len(names) > k else "")


def inventory(listing: Listing, meta: dict) -> list[dict]:
    """What was found in the input and what was done about each kind of file: rows of a table."""
    rows = [dict(found="images read", count=meta["n_read"], action="decoded", examples="")]
    if listing.not_images:
        rows.append(dict(found="files that are not images", count=len(listing.not_images), action="ignored",
                         examples=_examples(listing.not_images)))
    if listing.outside_classes:
        rows.append(dict(found="images outside any class folder", count=len(listing.outside_classes),
                         action="ignored (no label)", examples=_examples(listing.outside_classes)))
    if listing.missing:
        rows.append(dict(found="CSV rows naming a missing file", count=len(listing.missing), action="skipped",
                         examples=_examples(listing.missing)))
    if meta["corrupt"]:
        rows.append(dict(found="unreadable or truncated images", count=len(meta["corrupt"]), action="skipped",
                         examples=_examples(meta["corrupt"])))
    converted = Counter()
    for mode, n in meta.get("source_modes", {}).items():
        if mode != "RGB":
            converted[MODE_NAMES.get(mode, mode)] += n
    for what, n in sorted(converted.items()):
        rows.append(dict(found=f"{what} images", count=n, action=f"converted: {CONVERSIONS.get(what, 'to RGB')}",
                         examples=""))
    dup = meta["duplicates"]
    if dup.get("removed"):
        rows.append(dict(found="pixel-identical copies", count=dup["removed"],
                         action=f"removed ({dup['groups']} groups; one copy kept, conflicting labels dropped whole)",
                         examples=""))
    pairs = meta.get("near_duplicates", {}).get("pairs", [])
    if pairs:
        rows.append(dict(found="near-duplicate pairs", count=len(pairs),
                         action="kept; a test image with one in training or validation is taken out of test",
                         examples=""))
    rows.append(dict(found="images kept", count=meta["n_kept"], action="the dataset", examples=""))
    return rows
