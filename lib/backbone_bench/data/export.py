"""A study dataset written out as an image folder, as a user would have it (tests, the book's
example report, the `recommend` budget benchmark, and labs that want files to look at)."""
from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import numpy as np

from backbone_bench.data.prepare import resolve_source
from backbone_bench.data.registry import get_dataset
from backbone_bench.errors import InvalidParameterError

FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


SPLITS = ("train", "val", "test")


def export(name: str, out, per_class: int | None = None, classes=None, split: str | None = None) -> Counter:
    """Write ``out/<class>/<image>``: the source's own bytes (never re-encoded; decoded arrays as
    PNG), the first ``per_class`` images of each class in the source's order, after curation;
    ``split``: only the images the source puts in that split (train, val or test)."""
    from PIL import Image

    spec = get_dataset(name)
    if classes and (bad := set(classes) - set(spec.classes)):
        raise InvalidParameterError(f"{name} has no class {', '.join(sorted(bad))}; its classes: {', '.join(spec.classes)}")
    if split is not None and split not in SPLITS:
        raise InvalidParameterError(f"--split {split}: choose train, val or test (the source's own split)")
    source, where = resolve_source(spec)
    out = Path(out)
    written: Counter = Counter()
    seen: set = set()
    for raw in source.read(where):
        label = spec.map_label(raw.label)
        seen.add(raw.split)
        if split is not None and raw.split != split:
            continue
        if label is None or (classes and label not in classes) or (per_class and written[label] >= per_class):
            continue
        if isinstance(raw.payload, np.ndarray):
            buf = io.BytesIO()
            Image.fromarray(raw.payload).save(buf, format="PNG")
            payload, suffix = buf.getvalue(), ".png"
        else:
            payload = raw.payload
            suffix = FORMATS.get(Image.open(io.BytesIO(payload)).format, ".img")
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(raw.name.split(":")[-1]).stem)[-60:]
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{written[label]:05d}_{stem}{suffix}").write_bytes(payload)
        written[label] += 1
        if per_class and classes and all(written[c] >= per_class for c in classes):
            break
    if split is not None and not written:
        raise InvalidParameterError(f"{name} has no {split} images in its source (its splits: "
                                    f"{', '.join(s for s in SPLITS if s in seen)}); the study draws its own from them")
    return written
