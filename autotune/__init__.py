"""autotune: place the embedding tables of a DLRM on the cores of a chip, from the model's own query logs."""

__version__ = "0.1.0"
