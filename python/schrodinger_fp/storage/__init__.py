"""Storing many named tensors: archives, their on-disk index, tensor dump files, atomic output.

``archive`` writes and reads ``.sfp`` archives; ``index`` is their byte layout and its strict
parser; ``tensorfiles`` reads and writes safetensors, npy, npz and PyTorch dumps; ``shards``
handles checkpoint directories (sharded safetensors with their index); ``atomic`` gives every
writer a temporary file that only becomes the output once complete.
"""

from schrodinger_fp.storage.archive import Archive, load, open
from schrodinger_fp.storage.index import Entry
from schrodinger_fp.storage.writer import ArchiveWriter, save

__all__ = ["Archive", "ArchiveWriter", "Entry", "load", "open", "save"]
