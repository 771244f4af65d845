"""`backbone-bench recommend` on a folder built from real images (uc_merced tiles from the mirror,
exported as files) plus the bad inputs users have: a truncated JPEG, a grayscale PNG, a CMYK
JPEG, an RGBA PNG, a 16-bit PNG (made here from a real tile), a text file, uppercase suffixes,
a nested folder and a pixel-identical copy."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import requires_mirror

CLASSES = ("beach", "forest", "river")
SMALL = ["--backbones", "tf_mobilenetv3_small_100,regnetx_002", "--top", "1", "--seeds", "1", "--resolution", "48",
         "--steps", "2", "--device", "cpu", "--n-boot", "100"]


def cli(*args, check=True):
    out = subprocess.run([sys.executable, "-m", "backbone_bench", *map(str, args)], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(out.stderr[-3000:])
    return out


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    from backbone_bench.data.export import export

    folder = tmp_path_factory.mktemp("images") / "tiles"
    written = export("uc_merced", folder, per_class=18, classes=CLASSES)
    assert dict(written) == {c: 18 for c in CLASSES}
    return folder


@pytest.fixture(scope="module")
def messy_folder(clean_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("messy") / "tiles"
    shutil.copytree(clean_folder, folder)
    beach, forest, river = (sorted((folder / c).iterdir()) for c in CLASSES)
    rgb = Image.open(beach[0]).convert("RGB")
    rgb.convert("L").save(folder / "beach" / "gray.png")
    Image.open(forest[0]).convert("CMYK").save(folder / "forest" / "cmyk.JPG")
    Image.open(river[0]).convert("RGBA").save(folder / "river" / "alpha.PNG")
    wide = np.asarray(Image.open(river[1]).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(wide).save(folder / "river" / "wide16.png")
    data = beach[1].read_bytes()
    (folder / "beach" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "forest" / "notes.txt").write_text("not an image")
    (folder / "forest" / "nested" / "deeper").mkdir(parents=True)
    forest[2].rename(folder / "forest" / "nested" / "deeper" / "moved.JPEG")
    shutil.copy(beach[2], folder / "beach" / "copy_of_another.jpg")
    return folder


@requires_mirror
@pytest.mark.slow
def test_recommend_end_to_end_then_resumes(messy_folder, tmp_path):
    out = tmp_path / "out"
    first = cli("recommend", messy_folder, "--out", out, *SMALL)
    inventory = pd.read_csv(out / "inventory.csv", keep_default_na=False).set_index("found")
    assert inventory.at["files that are not images", "count"] == 1
    assert "notes.txt" in inventory.at["files that are not images", "examples"]
    assert inventory.at["unreadable or truncated images", "count"] == 1
    assert "truncated.jpg" in inventory.at["unreadable or truncated images", "examples"]
    for kind in ("grayscale images", "CMYK images", "RGBA images", "16-bit images"):
        assert inventory.at[kind, "count"] == 1, kind
    # the planted copy, and one pair already in these uc_merced tiles (its card lists it)
    assert inventory.at["pixel-identical copies", "count"] == 2
    read = 3 * 18 + 4 + 1 + 1                # the tiles (uppercase and nested ones too), 4 converted, truncated, copy
    assert inventory.at["images read", "count"] == read
    assert inventory.at["images kept", "count"] == read - 1 - 2
    assert "what was found" in first.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["recommended"]["backbone"] in ("tf_mobilenetv3_small_100", "regnetx_002")
    assert summary["recommended"]["mode"] in ("finetune", "linear_probe")
    tuned = pd.read_csv(out / "summary.csv")
    assert summary["pretraining"]["backbone"] == tuned[tuned["mode"] == "finetune"]["backbone"].iat[0]
    assert 0 <= summary["recommended"]["test_lo"] <= summary["recommended"]["test_hi"] <= 1
    table = pd.read_csv(out / "summary.csv")
    assert set(table["mode"]) == {"linear_probe", "finetune", "scratch"}
    assert table["recommended"].sum() == 1
    html = (out / "report.html").read_text()
    assert "Recommended:" in html and "data:image/png;base64" in html
    assert 'src="http' not in html                       # opens offline
    assert "Rerun or continue it" in html and "--steps 2" in html and "--n-boot 100" in html
    assert "chance is" in html and "BytesIO" not in html

    # a second run reuses the prepared data and the split, and skips every recorded run
    prepared = next((out / "prepared").iterdir())
    stamp = (prepared / "images.npy").stat().st_mtime_ns
    split = (out / "results" / "splits" / f"{json.loads((out / 'dataset.json').read_text())['name']}.npz").read_bytes()
    again = cli("recommend", messy_folder, "--out", out, *SMALL, "--no-report")
    assert "screen: 2 runs, 2 already recorded" in again.stdout
    assert "fine-tune: 1 runs, 1 already recorded" in again.stdout
    assert "scratch twin: 1 runs, 1 already recorded" in again.stdout
    assert (prepared / "images.npy").stat().st_mtime_ns == stamp
    assert (out / "results" / "splits" / f"{json.loads((out / 'dataset.json').read_text())['name']}.npz").read_bytes() == split


@requires_mirror
def test_bad_inputs_are_refused_with_the_fix(clean_folder, tmp_path):
    missing = cli("recommend", tmp_path / "nowhere", check=False)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr

    one = tmp_path / "one"
    shutil.copytree(clean_folder / "beach", one / "beach")
    out = cli("recommend", one, check=False)
    assert out.returncode == 2 and "only one class ('beach')" in out.stderr and "at least two" in out.stderr

    few = tmp_path / "few"
    shutil.copytree(clean_folder, few)
    for extra in sorted((few / "river").iterdir())[10:]:
        extra.unlink()
    out = cli("recommend", few, check=False)
    assert out.returncode == 2 and "'river' (10)" in out.stderr and "fewer than 15" in out.stderr

    out = cli("recommend", clean_folder, "--seeds", "7", check=False)
    assert out.returncode == 2 and "--seeds 7" in out.stderr

    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(next((clean_folder / "beach").iterdir()), flat / "a.jpg")
    out = cli("recommend", flat, check=False)
    assert out.returncode == 2 and "no class folders" in out.stderr

    text = tmp_path / "list.txt"
    text.write_text("x")
    out = cli("recommend", text, check=False)
    assert out.returncode == 2 and "not an input this command reads" in out.stderr

    out = cli("recommend", clean_folder, "--out", text, check=False)  # a file where a folder goes: one line
    assert out.returncode == 2 and f"--out {text} is a file" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@requires_mirror
def test_a_screen_only_run_takes_fewer_backbones_than_top(clean_folder, tmp_path):
    """--top says how many to fine-tune; a screen fine-tunes none, so it is not held against the panel."""
    out = cli("recommend", clean_folder, "--out", tmp_path / "screen", "--screen-only", "--top", "3", "--backbones",
              "regnetx_002", "--resolution", "32", "--device", "cpu", "--n-boot", "50", "--no-report", check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--top" not in out.stderr


def test_a_csv_whose_rows_all_name_missing_files_says_so(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\na.jpg,x\nb.jpg,y\n")
    out = cli("recommend", csv, check=False)
    assert out.returncode == 2 and "2 of 2 rows name files that do not exist" in out.stderr
    assert "suffixes read" not in out.stderr


@requires_mirror
def test_csv_names_missing_files_and_reads_splits(clean_folder, tmp_path):
    from backbone_bench.data.userdata import scan

    rows = [(str(p.relative_to(clean_folder)), p.parent.name, "test" if i % 5 == 0 else "train")
            for i, p in enumerate(sorted(clean_folder.rglob("*.jpg")))]
    rows += [("beach/gone.jpg", "beach", "train"), ("forest/also_gone.png", "forest", "train")]
    csv = clean_folder / "labels.csv"
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(csv, index=False)
    try:
        listing = scan(csv)
    finally:
        csv.unlink()
    assert listing.kind == "csv" and listing.classes == CLASSES
    assert listing.missing == ["row 56: beach/gone.jpg", "row 57: forest/also_gone.png"]
    assert {s for s, _, _ in listing.items} == {"train", "test"}

    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na.jpg,x\n")
    with pytest.raises(Exception, match="path,label"):
        scan(bad)


@requires_mirror
def test_parquet_in_hugging_face_layout(clean_folder, tmp_path):
    """A Parquet file as `datasets` writes it: image struct, ClassLabel integers named in its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backbone_bench.data.sources import decode
    from backbone_bench.data.userdata import LocalImages, scan

    files = sorted(clean_folder.rglob("*.jpg"))
    labels = [CLASSES.index(p.parent.name) for p in files]
    table = pa.table({"image": [{"bytes": p.read_bytes(), "path": p.name} for p in files], "label": labels})
    features = {"image": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": list(CLASSES)}}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(table, path)
    listing = scan(path)
    assert listing.kind == "parquet" and listing.classes == CLASSES and sum(listing.labels.values()) == len(files)
    first = next(LocalImages(str(path), "parquet").read(path))
    assert first.label == CLASSES[labels[0]] and first.split == "train"
    assert decode(first.payload, 3, 32)[2] == "RGB"


def test_the_inventory_wraps_its_examples_to_the_terminal():
    from backbone_bench.recommend.run import inventory_text

    table = pd.DataFrame([dict(found="images read", count=60, action="decoded", examples=""),
                          dict(found="not images", count=2, action="skipped",
                               examples="forest/notes.txt, forest/other_notes_that_are_long.txt, beach/a_long_name.txt")])
    text = inventory_text(table, 60)
    assert all(len(line) <= 60 for line in text.splitlines()) and len(text.splitlines()) > 3
    column = text.splitlines()[0].index("examples")
    assert text.splitlines()[2][column:].startswith("forest/notes.txt")
    parts = "".join(line[column:].strip() for line in text.splitlines()[2:])  # the column, read down
    assert parts.replace(" ", "") == table.loc[1, "examples"].replace(" ", "")
