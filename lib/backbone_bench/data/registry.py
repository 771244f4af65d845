"""One entry per dataset: what it is, where it comes from, and how it is curated.

Sources are tried in the order given; mirror sources look inside every folder named by
BACKBONE_BENCH_DATA, download sources fetch into the cache and verify a checksum.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from backbone_bench.data.sources import HubParquet, MirrorNpz, MirrorParquet, UrlImageFolder, UrlNpz
from backbone_bench.errors import unknown_name

DOMAINS = ("natural", "medical", "galaxy", "remote_sensing")
USER_DOMAIN = "your_data"          # a dataset `recommend` made from a user's files (data/userdata.py)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    domain: str                      # one of DOMAINS: the study ranks backbones per domain
    classes: tuple[str, ...]         # final class names; label i is classes[i]
    sources: tuple                   # tried in order (see data/sources.py)
    flip_ok: bool                    # does a horizontal flip preserve the label?
    storage_size: int                # prepared arrays are square, this many pixels a side
    channels: int = 3                # 1 for grayscale modalities: stored once, repeated on device
    label_map: dict = field(default_factory=dict)  # source label -> class, None drops it
    curation: str = ""               # the curation rules in words, for the card and the book
    description: str = ""
    citation: str = ""
    licence: str = ""
    prepared_root: str = ""          # where its prepared arrays go ("": the cache's prepared/)
    # near-twins of evaluation images in the training images (data/twins.py), per dataset: the
    # thumbnail rule's cosine (None: off, its pairs were not the same picture), whether the
    # package's phash rule applies, and a catalogue identity that names one object in two images
    twin_cosine: float | None = 0.985
    twin_package: bool = True
    catalogue: str = ""

    def __post_init__(self):
        if self.domain not in DOMAINS + (USER_DOMAIN,):
            raise ValueError(f"{self.name}: domain {self.domain!r} is not one of {DOMAINS}")
        mapped = {v for v in self.label_map.values() if v is not None}
        if not mapped <= set(self.classes):
            raise ValueError(f"{self.name}: label_map targets {mapped - set(self.classes)} not in classes")

    def map_label(self, source_label: str) -> str | None:
        """Curated class name for a source label; None means the image is dropped."""
        return self.label_map.get(source_label, source_label)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _medmnist(name, mirror_file, classes, md5, what, source_citation, curation, twin_cosine) -> DatasetSpec:
    """A MedMNIST v2 set: the mirror's .npz first, then the official file from Zenodo."""
    return DatasetSpec(
        name=name, domain="medical", channels=1, flip_ok=True, storage_size=28, classes=classes,
        twin_cosine=twin_cosine,
        sources=(MirrorNpz(f"medmnist/{mirror_file}", classes),
                 UrlNpz(f"https://zenodo.org/records/10519652/files/{name}.npz", classes, md5)),
        description=f"{what}, MedMNIST v2, 28 px, binary.",
        citation=f"Yang et al., MedMNIST v2, Scientific Data 10 (2023) 41; {source_citation}.",
        licence="CC BY 4.0.", curation=curation)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
UC_MERCED_CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
    "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
    "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
    "sparseresidential", "storagetanks", "tenniscourt")
EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                   "Pasture", "PermanentCrop", "Residential", "River", "SeaLake")
GALAXY10_CLASSES = ("disturbed", "merging", "round_smooth", "in_between_round_smooth", "cigar_shaped_smooth",
                    "barred_spiral", "unbarred_tight_spiral", "unbarred_loose_spiral", "edge_on_without_bulge",
                    "edge_on_with_bulge")
FLOWERS102_CLASSES = tuple(f"flower_{i:03d}" for i in range(102))

_ENTRIES = [
    DatasetSpec(
        name="cifar10", domain="natural", classes=CIFAR10_CLASSES, flip_ok=True, twin_cosine=0.97,
        storage_size=32, sources=(MirrorParquet("cifar10", {"train": "train.parquet", "test": "test.parquet"}),
                                  HubParquet("uoft-cs/cifar10", {"train": "train", "test": "test"},
                                             image_column="img")),
        description="Tiny everyday photos, 32 px, ten classes.",
        citation="Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009.",
        licence="Free for research (no formal licence).",
        curation="None. The mirror re-saved the official pixels as JPEG, so results are close to, "
                 "not identical with, results on the original pixels."),
    DatasetSpec(
        name="uc_merced", domain="remote_sensing", classes=UC_MERCED_CLASSES, flip_ok=True, twin_cosine=0.98,
        storage_size=256, sources=(MirrorParquet("uc_merced", {"train": "train.parquet", "test": "test.parquet"}),),
        description="USGS aerial orthoimagery tiles, 256 px, 21 land-use classes.",
        citation="Yang and Newsam, Bag-of-Visual-Words and Spatial Extensions for Land-Use "
                 "Classification, ACM SIGSPATIAL 2010.",
        licence="USGS imagery, public domain.",
        curation="None; the mirror's 80/20 per-class split is used as the test split."),
    DatasetSpec(
        name="brain_tumor_mri", domain="medical", channels=1, flip_ok=True, storage_size=256, twin_cosine=0.98,
        classes=("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"),
        sources=(MirrorParquet("brain_tumor_mri", {"train": "train.parquet", "test": "test.parquet"}),),
        description="Brain MRI slices (T1 contrast), four classes; stored grayscale at 256 px.",
        citation="Bhuvaji et al., Brain Tumor Classification (MRI), Kaggle 2020.",
        licence="MIT (as published by the authors).",
        curation="Pixel-identical images are removed (a test copy is kept, its training copies "
                 "dropped), and test images with a near-duplicate in training or validation are taken "
                 "out of test. The authors' test split is known to be shifted from train."),
    DatasetSpec(
        name="galaxy_zoo1", domain="galaxy", flip_ok=False, storage_size=212,
        twin_cosine=None, twin_package=False, catalogue="sdss_objid",
        classes=("edge_on", "elliptical", "merger", "spiral"),
        label_map={"spiral_cw": "spiral", "spiral_acw": "spiral", "dont_know": None},
        sources=(MirrorParquet("galaxy_zoo1", {"train": "train.parquet"}),),
        description="SDSS galaxy cut-outs labelled by Galaxy Zoo 1 volunteers.",
        citation="Lintott et al., MNRAS 389 (2008) 1179; Lintott et al., MNRAS 410 (2011) 166.",
        licence="Galaxy Zoo data release, public; SDSS imagery.",
        curation="spiral_cw and spiral_acw merged into spiral; dont_know dropped. Horizontal flips "
                 "are off: they swap the handedness the source labels encode."),
    _medmnist("breastmnist", "breastmnist.npz", ("malignant", "normal_or_benign"),
              "md5:750601b1f35ba3300ea97c75c52ff8f6", "Breast ultrasound", "Al-Dhabyani et al. 2020",
              "None; the official train/val/test splits are used.", 0.97),
    _medmnist("pneumoniamnist", "pneumoniamnist_subsampled.npz", ("normal", "pneumonia"),
              "md5:28209eda62fecd6e6a2d98b1501bb15f", "Paediatric chest X-ray", "Kermany et al. 2018",
              "The mirror's train split was subsampled by its uploader (3,882 of 4,708); "
              "official validation and test splits. The download is the full official set.", 0.98),
    # ---- served only by the public internet -------------------------------------------
    DatasetSpec(
        name="eurosat", domain="remote_sensing", classes=EUROSAT_CLASSES, flip_ok=True,
        storage_size=64,
        sources=(UrlImageFolder(
            "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
            "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
            "md5:c8fa014336c82ac7804f0398fcb19387", root="2750"),),
        description="Sentinel-2 RGB patches, 64 px, ten land-cover classes (27,000 images).",
        citation="Helber et al., EuroSAT, IEEE JSTARS 12 (2019) 2217.",
        licence="MIT.",
        curation="None; no source test split, so a stratified 20 % is held out."),
    DatasetSpec(
        name="galaxy10_decals", domain="galaxy", flip_ok=True, storage_size=256,
        classes=GALAXY10_CLASSES,
        sources=(HubParquet("matthieulel/galaxy10_decals", {"train": "train", "test": "test"},
                            class_names=GALAXY10_CLASSES),),
        description="DECaLS galaxy images (17,736), ten Galaxy Zoo DECaLS morphology classes.",
        citation="Leung and Bovy, astroNN (2019); Walmsley et al., MNRAS 509 (2022) 3966.",
        licence="Galaxy10 DECaLS, public (astroNN).",
        curation="None; no class is defined by handedness, so flips are allowed."),
    DatasetSpec(
        name="flowers102", domain="natural", flip_ok=True, storage_size=256,
        classes=FLOWERS102_CLASSES,
        sources=(HubParquet("nelorth/oxford-flowers", {"train": "train", "test": "test"},
                            class_names=FLOWERS102_CLASSES),),
        description="Oxford 102 Flowers: 8,189 photos of 102 flower species.",
        citation="Nilsback and Zisserman, ICVGIP 2008.",
        licence="Research use.",
        curation="Class indices as the Hub copy numbers them."),
]

DATASETS: dict[str, DatasetSpec] = {d.name: d for d in _ENTRIES}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset made at run time (a user's folder) to this process's registry."""
    DATASETS[spec.name] = spec
    return spec


#: Called in order when a name is not registered; each may register datasets. data/userdata.py adds
#: the one that reads user datasets from files, which is how worker processes find them.
FINDERS: list = []


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        for find in FINDERS:
            find()
    try:
        return DATASETS[name]
    except KeyError:
        raise unknown_name("dataset", name, DATASETS) from None
