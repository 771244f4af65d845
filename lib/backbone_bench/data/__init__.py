"""The data layer: registry -> sources -> prepared uint8 arrays -> committed splits -> cards."""
from backbone_bench.data.registry import DATASETS, DatasetSpec, get_dataset

__all__ = ["DATASETS", "DatasetSpec", "get_dataset"]
