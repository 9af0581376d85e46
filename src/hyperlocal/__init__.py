"""hyperlocal: a self-hosted server that speaks the Hypereal API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
