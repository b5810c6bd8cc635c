"""Activation caches that stream to disk, one file per layer, read one layer at a time.

A probe sweep needs every layer's activations at every position, but only one layer at a time:
it fits ``acts[:, layer]`` for each layer in turn. :class:`LayerStore` writes each batch's
activations straight to ``folder/layer_NNN.bin`` (raw rows of ``d_model`` values, appended as
batches finish), so collecting never holds more than one batch in memory; reading maps the
files (``numpy.memmap``) and materialises only the layer, and the positions, asked for. A 3B
model (28 layers × 3072 wide) over 1,000 dialogues × 40 positions is 28 × 3072 × 40,000 × 2 bytes
≈ 6.9 GB on disk, and about 250 MB in memory per layer read.

:class:`DiskActivations` is the array-like view: ``acts.shape``, ``acts[rows]`` (a view with the
positions selected), ``acts[rows, layer]`` and ``acts[:, layer]`` (arrays), ``np.asarray(acts)``
(everything, when it fits). Probes, sweeps and the belief study take it where they take arrays.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["LayerStore", "DiskActivations", "STORE_FILE"]

STORE_FILE = "layers.json"
"""What a store folder's layout is: positions, layers, width, dtype (written when complete)."""


def _layer_file(folder: Path, layer: int) -> Path:
    return folder / f"layer_{layer:03d}.bin"


class LayerStore:
    """Append-only writer of ``[positions, layers, d_model]`` activations, one file per layer.

    Parameters
    ----------
    folder : str or Path
        Where the layer files go (created; earlier layer files there are replaced).
    n_layers, d_model : int
        Shape of one position's activations.
    dtype : numpy dtype
        Storage dtype (float16 by default, as in memory).

    Examples
    --------
    >>> import tempfile
    >>> store = LayerStore(tempfile.mkdtemp(), n_layers=2, d_model=3)
    >>> store.append(np.ones((4, 2, 3)))
    >>> store.close().shape
    (4, 2, 3)
    """

    def __init__(self, folder: str | Path, n_layers: int, d_model: int, dtype=np.float16):
        self.folder, self.n_layers, self.d_model, self.dtype = Path(folder), n_layers, d_model, np.dtype(dtype)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / STORE_FILE).unlink(missing_ok=True)  # incomplete until close()
        for old in self.folder.glob("layer_*.bin"):
            old.unlink()
        self.n = 0

    def append(self, rows: np.ndarray) -> None:
        """Write ``rows`` of shape ``[k, n_layers, d_model]`` at the end of every layer's file."""
        rows = np.asarray(rows, dtype=self.dtype)
        if rows.ndim != 3 or rows.shape[1:] != (self.n_layers, self.d_model):
            raise ValueError(f"expected rows of shape [k, {self.n_layers}, {self.d_model}], got {rows.shape}")
        for layer in range(self.n_layers):
            with open(_layer_file(self.folder, layer), "ab") as fh:
                fh.write(np.ascontiguousarray(rows[:, layer]).tobytes())
        self.n += len(rows)

    def close(self) -> "DiskActivations":
        """Mark the store complete (``layers.json``) and return its :class:`DiskActivations`."""
        for layer in range(self.n_layers):
            _layer_file(self.folder, layer).touch()  # a store of zero positions still has its files
        layout = {"n": self.n, "n_layers": self.n_layers, "d_model": self.d_model, "dtype": self.dtype.name}
        (self.folder / STORE_FILE).write_text(json.dumps(layout), encoding="utf-8")
        return DiskActivations(self.folder)


class DiskActivations:
    """A read-only ``[positions, layers, d_model]`` array on disk (a :class:`LayerStore` folder).

    Indexing reads one layer at a time: ``acts[:, l]`` and ``acts[rows, l]`` are arrays,
    ``acts[rows]`` is a view of the selected positions (boolean mask, index array or slice).

    Examples
    --------
    >>> import tempfile
    >>> store = LayerStore(tempfile.mkdtemp(), n_layers=2, d_model=3)
    >>> store.append(np.arange(24).reshape(4, 2, 3))
    >>> acts = store.close()
    >>> acts[:, 1][0].tolist(), acts[np.array([False, True, True, False])].shape
    ([3.0, 4.0, 5.0], (2, 2, 3))
    """

    def __init__(self, folder: str | Path, rows: np.ndarray | None = None):
        self.folder = Path(folder)
        layout = json.loads((self.folder / STORE_FILE).read_text(encoding="utf-8"))
        self._n, self.n_layers, self.d_model = layout["n"], layout["n_layers"], layout["d_model"]
        self.dtype = np.dtype(layout["dtype"])
        self.rows = np.arange(self._n) if rows is None else rows

    @staticmethod
    def exists(folder: str | Path) -> bool:
        """Whether ``folder`` holds a complete store."""
        return (Path(folder) / STORE_FILE).is_file()

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(positions, layers, d_model)`` of this view."""
        return (len(self.rows), self.n_layers, self.d_model)

    @property
    def ndim(self) -> int:
        """Always 3."""
        return 3

    def __len__(self) -> int:
        return len(self.rows)

    def layer(self, layer: int) -> np.ndarray:
        """``[positions, d_model]`` of one layer, for this view's positions (read from disk)."""
        if not -self.n_layers <= layer < self.n_layers:
            raise IndexError(f"layer {layer} out of range for {self.n_layers} layers")
        if self._n == 0:
            return np.empty((0, self.d_model), dtype=self.dtype)
        mm = np.memmap(_layer_file(self.folder, layer % self.n_layers), dtype=self.dtype, mode="r",
                       shape=(self._n, self.d_model))
        return np.asarray(mm[self.rows])

    def _select(self, key) -> np.ndarray:
        return np.arange(len(self.rows))[key] if not isinstance(key, np.ndarray) or key.dtype != bool else \
            np.flatnonzero(key)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        rows = self.rows[self._select(key[0])] if not (isinstance(key[0], slice) and key[0] == slice(None)) else self.rows
        if len(key) == 1:
            return DiskActivations(self.folder, np.atleast_1d(rows))
        view = DiskActivations(self.folder, np.atleast_1d(rows))
        if isinstance(key[1], (int, np.integer)):
            out = view.layer(int(key[1]))
            out = out[(slice(None),) + tuple(key[2:])] if len(key) > 2 else out
            return out[0] if np.ndim(rows) == 0 else out
        return np.asarray(view)[(slice(None),) + tuple(key[1:])]

    def __array__(self, dtype=None, copy=None):
        out = np.stack([self.layer(l) for l in range(self.n_layers)], axis=1) if self.n_layers else \
            np.empty(self.shape, dtype=self.dtype)
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        """Everything, materialised as an array of ``dtype``."""
        return np.asarray(self, dtype=dtype)
