"""Which lightweight ImageNet backbone for which domain. The stages, each a sub-package that imports
only the ones before it: data -> models -> engine -> study -> analysis -> report -> recommend -> cli."""
__version__ = "0.1.0"
