"""selfsup: self-supervised representation learning in PyTorch.

>>> from selfsup import load_encoder
>>> encoder = load_encoder("runs/simclr-fashion-mnist-...")  # doctest: +SKIP
"""
from selfsup.models.export import load_encoder

__version__ = "0.1.0"
__all__ = ["load_encoder", "__version__"]
