"""Duplicates and near-duplicates, found on decoded pixels (never on file bytes).

Exact duplicates: images whose arrays at the storage resolution are identical. Two files that
differ only in metadata or encoding decode to the same pixels and are the same image; they are
grouped before splitting and one copy is kept (see ``deduplicate``).

Near-duplicates: pairs of different arrays that show the same picture (a re-crop, a brightness
change, a re-encode, the adjacent slice of one scan). A pair is near-duplicate when its
perceptual hashes (``imagehash.phash``, 64 bits, on the grayscale image) differ in at most
``PHASH_BITS`` bits AND the Pearson correlation of its 32x32 grayscale thumbnails is at least
``MIN_CORRELATION``. The hash alone is not enough: centred blobs on black (galaxies) and tiny
chest X-rays share hashes without being the same picture; the correlation confirms. The two
thresholds were chosen by looking at sampled pairs of every mirrored dataset (see the closing
note of the validity issue): at 4 bits and 0.99 no pair we looked at was a false positive.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

PHASH_BITS = 4
MIN_CORRELATION = 0.99
THUMB = 32
RULE = (f"exact: sha1 of the decoded uint8 array at storage size; near: phash Hamming <= {PHASH_BITS} "
        f"and {THUMB}x{THUMB} grayscale thumbnail correlation >= {MIN_CORRELATION}")


def pixel_hash(stored: np.ndarray) -> str:
    return hashlib.sha1(stored.tobytes() + str(stored.shape).encode()).hexdigest()


def deduplicate(hashes, labels, splits, names):
    """Keep one image per group of identical hashes.

    The kept copy is the one in the most protected split (test, then val, then train), so
    no image is both trained on and tested on. A group whose copies disagree on the label
    is dropped whole: its label is unknowable.
    """
    groups = defaultdict(list)
    for i, h in enumerate(hashes):
        groups[h].append(i)
    keep, report = [], dict(groups=0, removed=0, across_splits=0, label_conflicts=0, examples=[])
    for members in groups.values():
        if len(members) == 1:
            keep.append(members[0])
            continue
        report["groups"] += 1
        report["across_splits"] += len({splits[i] for i in members}) > 1
        if len({labels[i] for i in members}) > 1:
            report["label_conflicts"] += 1
            report["removed"] += len(members)
        else:
            best = max(members, key=lambda i: (splits[i], -i))
            keep.append(best)
            report["removed"] += len(members) - 1
        if len(report["examples"]) < 5:
            report["examples"].append([names[i] for i in members])
    return sorted(keep), report


def _gray(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("L")


def thumbnails(grays, size: int = THUMB) -> np.ndarray:
    """Unit-norm, mean-centred ``size`` x ``size`` thumbnails of grayscale PIL images."""
    from PIL import Image

    thumbs = np.empty((len(grays), size * size), dtype=np.float32)
    for i, gray in enumerate(grays):
        thumbs[i] = np.asarray(gray.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32).ravel()
    thumbs -= thumbs.mean(1, keepdims=True)
    thumbs /= np.linalg.norm(thumbs, axis=1, keepdims=True) + 1e-6
    return thumbs


def grays(images) -> list:
    return [_gray(np.asarray(image)) for image in images]


def signatures(images) -> tuple[np.ndarray, np.ndarray]:
    """Perceptual hashes (uint64) and unit-norm, mean-centred 32x32 thumbnails of uint8 images."""
    import imagehash

    gray = grays(images)
    hashes = np.array([int(str(imagehash.phash(g)), 16) for g in gray], dtype=np.uint64)
    return hashes, thumbnails(gray)


def near_duplicates(hashes: np.ndarray, thumbs: np.ndarray, chunk: int = 2048) -> list[list]:
    """[i, j, hamming bits, correlation] for every near-duplicate pair, i < j."""
    pairs = []
    for start in range(0, len(hashes), chunk):
        bits = np.bitwise_count(hashes[start:start + chunk, None] ^ hashes[None, :])
        rows, cols = np.nonzero(bits <= PHASH_BITS)
        rows = rows + start
        upper = cols > rows
        rows, cols = rows[upper], cols[upper]
        if not len(rows):
            continue
        corr = np.einsum("ij,ij->i", thumbs[rows], thumbs[cols])
        for i, j, c in zip(rows[corr >= MIN_CORRELATION], cols[corr >= MIN_CORRELATION], corr[corr >= MIN_CORRELATION]):
            pairs.append([int(i), int(j), int(bits[i - start, j]), round(float(c), 4)])
    return pairs
