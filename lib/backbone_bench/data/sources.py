"""Where a dataset's files come from: local mirrors first, then verified downloads.

Every source yields the same thing, ``RawImage`` records, so the prepare step does not care
whether an image came from a Parquet mirror, an .npz, a Hub download or a zip of folders.
"""
from __future__ import annotations

import io
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple
from urllib.parse import quote

import numpy as np

from backbone_bench import paths
from backbone_bench.errors import ChecksumError, UnsafeArchiveError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class RawImage(NamedTuple):
    split: str                      # the source's split: train, val or test
    label: str                      # the source's class name (before curation)
    payload: bytes | np.ndarray     # encoded image bytes, or decoded uint8 pixels
    name: str                       # where it came from, for error messages and cards


def offline() -> bool:
    return any(os.environ.get(v, "0") not in ("", "0") for v in ("HF_HUB_OFFLINE", "BACKBONE_BENCH_OFFLINE"))


def download(url: str, checksum: str, folder: Path, fname: str | None = None) -> Path:
    """Fetch ``url`` into ``folder`` once; a file failing ``checksum`` ("md5:.." or "sha256:..") is never used."""
    import pooch  # pooch downloads to a temporary name and moves it only after the hash matches

    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(pooch.retrieve(url, known_hash=checksum, fname=fname, path=folder, progressbar=True))
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ChecksumError(f"{url} failed its checksum ({checksum}); the download was discarded, not used. "
                            f"Retry, or check that the source has not changed. ({err})") from None


def safe_extract(archive: Path, target: Path) -> Path:
    """Extract a zip or tar archive, refusing it whole if any member would land outside ``target``."""
    target = target.resolve()
    target.mkdir(parents=True, exist_ok=True)

    def check(name: str, link: str | None = None) -> None:
        for candidate in (name, link):
            if candidate is None:
                continue
            base = (target / name).parent if candidate is link else target
            dest = (base / candidate).resolve()
            if os.path.isabs(candidate) or not dest.is_relative_to(target):
                raise UnsafeArchiveError(f"{archive.name}: member {name!r} would be written outside {target}; "
                                         "nothing was extracted. Use a trusted copy of the archive.")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                check(member.filename)
            zf.extractall(target)
    else:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                    raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} is a device or fifo; refused.")
                check(member.name, member.linkname if (member.issym() or member.islnk()) else None)
            tf.extractall(target, filter="data")
    return target


def _mirror_lookup(relative: str) -> Path | None:
    for root in paths.data_mirrors():
        if (root / relative).exists():
            return root / relative
    return None


def _download_dir(kind: str) -> Path:
    return paths.cache_dir() / "downloads" / kind


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MirrorParquet:
    """A folder of Parquet files in the Hugging Face image layout (image struct + string label)."""
    folder: str
    files: dict                          # source split -> file name inside the folder
    image_column: str = "image"
    label_column: str = "label"
    download = False

    def describe(self) -> str:
        return f"mirror folder '{self.folder}/' ({', '.join(self.files.values())})"

    def locate(self) -> Path | None:
        found = _mirror_lookup(self.folder)
        return found if found and all((found / f).exists() for f in self.files.values()) else None

    def files_of(self, where: Path) -> list[Path]:
        return [where / f for f in self.files.values()]

    def read(self, where: Path) -> Iterator[RawImage]:
        yield from _read_parquet({s: [where / f] for s, f in self.files.items()},
                                 self.image_column, self.label_column, None)


@dataclass(frozen=True)
class MirrorNpz:
    """A MedMNIST-style .npz with ``{split}_images`` and ``{split}_labels`` arrays."""
    file: str
    class_names: tuple                   # source label index -> class name
    download = False

    def describe(self) -> str:
        return f"mirror file '{self.file}'"

    def locate(self) -> Path | None:
        return _mirror_lookup(self.file)

    def files_of(self, where: Path) -> list[Path]:
        return [where]

    def read(self, where: Path) -> Iterator[RawImage]:
        yield from _read_npz(where, self.class_names)


@dataclass(frozen=True)
class UrlNpz(MirrorNpz):
    """The same .npz format (``file`` is its URL), downloaded and checked against its published hash."""
    checksum: str = ""
    download = True

    def describe(self) -> str:
        return f"download {self.file}"

    def locate(self) -> Path | None:
        return download(self.file, self.checksum, _download_dir("npz"), fname=Path(self.file).name)


@dataclass(frozen=True)
class UrlImageFolder:
    """An archive of ``<root>/<class>/<image>`` folders, with no split of its own."""
    url: str
    checksum: str
    root: str = "."
    download = True

    def describe(self) -> str:
        return f"download {self.url}"

    def locate(self) -> Path | None:
        archive = download(self.url, self.checksum, _download_dir("archives"))
        target = archive.with_name(archive.name + ".extracted")
        if not (target / ".complete").exists():
            safe_extract(archive, target)
            (target / ".complete").touch()
        return target / self.root

    def files_of(self, where: Path) -> list[Path]:
        return sorted(p for p in where.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)

    def read(self, where: Path) -> Iterator[RawImage]:
        for path in self.files_of(where):
            yield RawImage("train", path.parent.name, path.read_bytes(), str(path.relative_to(where)))


@dataclass(frozen=True)
class HubParquet:
    """A Hugging Face Hub dataset, read from the Hub's Parquet conversion.

    The file list comes from ``/api/datasets/<repo>/parquet/<config>/<split>``; each file's
    sha256 from the Hub's LFS manifest (``/tree/refs%2Fconvert%2Fparquet/...``), so every file
    is verified without a hash typed into this registry. HF_ENDPOINT moves the Hub (tests).
    """
    repo_id: str
    splits: dict                         # source split -> Hub split name
    config: str = "default"
    image_column: str = "image"
    label_column: str = "label"
    class_names: tuple | None = None     # label index -> name, when labels are integers
    download = True

    def describe(self) -> str:
        return f"Hugging Face Hub dataset {self.repo_id} (Parquet)"

    def _endpoint(self) -> str:
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")

    def locate(self) -> Path | None:
        import requests

        folder = _download_dir("hub") / self.repo_id.replace("/", "--") / self.config
        api = f"{self._endpoint()}/api/datasets/{self.repo_id}"
        for split, hub_split in self.splits.items():
            urls = requests.get(f"{api}/parquet/{self.config}/{hub_split}", timeout=30)
            urls.raise_for_status()
            tree = requests.get(f"{api}/tree/{quote('refs/convert/parquet', safe='')}/{self.config}/{hub_split}",
                                timeout=30)
            tree.raise_for_status()
            sha = {Path(e["path"]).name: e["lfs"]["oid"] for e in tree.json() if e.get("lfs")}
            for url in urls.json():
                name = Path(url.split("?")[0]).name
                if name not in sha:
                    raise ChecksumError(f"{self.repo_id}: no sha256 published for {name}; refusing an unverified file.")
                download(url, f"sha256:{sha[name]}", folder / split, fname=name)
        return folder

    def files_of(self, where: Path) -> list[Path]:
        return sorted(where.glob("*/*.parquet"))

    def read(self, where: Path) -> Iterator[RawImage]:
        files = {split: sorted((where / split).glob("*.parquet")) for split in self.splits}
        yield from _read_parquet(files, self.image_column, self.label_column, self.class_names)


# ---------------------------------------------------------------------------------------------
def _read_parquet(files: dict, image_column: str, label_column: str, class_names) -> Iterator[RawImage]:
    import pyarrow.parquet as pq

    for split, split_files in files.items():
        for file in split_files:
            parquet = pq.ParquetFile(file)
            for batch in parquet.iter_batches(batch_size=512, columns=[image_column, label_column]):
                images = batch.column(image_column).to_pylist()
                labels = batch.column(label_column).to_pylist()
                for i, (image, label) in enumerate(zip(images, labels)):
                    if class_names is not None and not isinstance(label, str):
                        label = class_names[int(label)]
                    name = (image.get("path") if isinstance(image, dict) else None) or f"{file.name}#{i}"
                    data = image["bytes"] if isinstance(image, dict) else image
                    yield RawImage(split, str(label), data, f"{file.parent.name}/{file.name}:{name}")


def _read_npz(file: Path, class_names) -> Iterator[RawImage]:
    with np.load(file) as arrays:
        for split in ("train", "val", "test"):
            if f"{split}_images" not in arrays:
                continue
            images = arrays[f"{split}_images"]
            labels = arrays[f"{split}_labels"].reshape(len(images), -1)[:, 0]  # (N,) or (N, 1)
            for i, (image, label) in enumerate(zip(images, labels)):
                yield RawImage(split, class_names[int(label)], image, f"{file.name}:{split}[{i}]")


# Source modes and what they become. 16-bit and float images are scaled by their own range
# (PIL's own conversion clips them at 255); palette images go through RGBA so a transparent
# palette entry does not warn; the alpha channel is dropped (the pixels under it are kept).
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def decode(payload: bytes | np.ndarray, channels: int, size: int):
    """(native pixels, the stored square array, the source's PIL mode)."""
    from PIL import Image

    if isinstance(payload, np.ndarray):
        image = Image.fromarray(payload)
    else:
        try:
            image = Image.open(io.BytesIO(payload))
        except Image.UnidentifiedImageError:
            # PIL's own message names the in-memory buffer (<_io.BytesIO object at 0x...>), not the file
            raise Image.UnidentifiedImageError("not an image format PIL can read") from None
        image.load()  # truncated or corrupt files fail here, not later
    mode = image.mode
    if mode in WIDE_MODES:
        wide = np.asarray(image, dtype=np.float64)
        lo, hi = float(wide.min()), float(wide.max())
        image = Image.fromarray(((wide - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)).round().astype(np.uint8))
    elif mode == "P":
        image = image.convert("RGBA")
    image = image.convert("L" if channels == 1 else "RGB")
    native = np.asarray(image)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    stored = np.asarray(image)
    return native, stored.reshape(size, size, channels), mode
