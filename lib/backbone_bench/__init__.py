"""Which lightweight ImageNet backbone for which domain: data, engine, results, ranking, book."""
__version__ = "0.1.0"
