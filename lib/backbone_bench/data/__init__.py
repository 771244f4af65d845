"""The data layer: registry -> sources -> prepared uint8 arrays -> committed splits -> cards.

Owns everything about images before a model sees them: the registry of datasets (registry.py),
where their files come from (sources.py, bundled.py), decoding, curation and de-duplication into
cached arrays (prepare.py, dedup.py), the committed splits and shot subsets (splits.py), the cards
(card.py), a user's own folders (userdata.py) and exports (export.py). It imports nothing of the
package but errors.py and paths.py: every later stage may import it.
"""
from backbone_bench.data import userdata  # noqa: F401  (registers the finder of user datasets)
from backbone_bench.data.registry import DATASETS, DatasetSpec, get_dataset

__all__ = ["DATASETS", "DatasetSpec", "get_dataset"]
