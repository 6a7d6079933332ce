"""selfsup: self-supervised representation learning in PyTorch.

>>> from selfsup import load_encoder
>>> encoder = load_encoder("runs/simclr-fashion-mnist-...")  # doctest: +SKIP
"""
__version__ = "0.1.0"
__all__ = ["load_encoder", "__version__"]


def __getattr__(name: str):
    # imported on first use: `import selfsup.losses` should not pay for torchvision
    if name == "load_encoder":
        from selfsup.models.export import load_encoder

        return load_encoder
    raise AttributeError(f"module 'selfsup' has no attribute {name!r}")
