"""fleet: a multi-cluster fleet manager and disaster-recovery bootstrapper for Kubernetes."""

__version__ = "0.1.0"
__all__ = ["__version__"]
