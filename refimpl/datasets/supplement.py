r"""The supplement's six data sets (its Sec. 3.1 and Table 1), read from local copies.

=====================  ====================  ================  =====================================
loader                 variable              subfolder         expected content (published format)
=====================  ====================  ================  =====================================
load_fashion_mnist     REFIMPL_FASHION_MNIST fashion_mnist     ``train-images-idx3-ubyte.gz`` and the
                                                               three other idx gzip files
load_cifar10           REFIMPL_CIFAR10       cifar10           ``cifar-10-batches-py/`` (pickle
                                                               batches ``data_batch_1..5``,
                                                               ``test_batch``, ``batches.meta``)
load_fsdd              REFIMPL_FSDD          fsdd              ``recordings/{digit}_{speaker}_{i}.wav``
load_esc50             REFIMPL_ESC50         esc50             ``audio/*.wav`` and ``meta/esc50.csv``
load_amazon_photo      REFIMPL_AMAZON        amazon            ``amazon_electronics_photo.npz``
load_amazon_computers  REFIMPL_AMAZON        amazon            ``amazon_electronics_computers.npz``
=====================  ====================  ================  =====================================

Each loader takes ``path``; when it is ``None`` it reads the variable, then
``$REFIMPL_DATA/<subfolder>``, like the UCI loaders of :mod:`refimpl.datasets.uci`; a missing
file raises :class:`FileNotFoundError` naming where to put it.  Every loader returns a
:class:`refimpl.datasets.Dataset` whose train / validation / test parts are the
supplement's partitioning (Table 1), standardized with the training statistics as in
:func:`refimpl.datasets.split_standardize` (``standardize=False`` keeps the raw features).

Audio features (FSDD, ESC-50; supplement Sec. 3.1): per time step 40 MFCC, 12 chroma and
128 mel-spectrogram values (180), averaged over the time steps, computed with librosa (the
library the supplement names; ``pip install -e ".[audio]"``).  Loaders do I/O only.
"""
from __future__ import annotations

import csv
import gzip
import os
import pickle
import re
import struct
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from .base import Dataset, _encode, _feature_scale, stratified_split
from .uci import _locate, _require

__all__ = [
    "AUDIO_FEATURE_NAMES",
    "SUPPLEMENT_DATASETS",
    "GraphDataset",
    "audio_features",
    "load_amazon",
    "load_amazon_computers",
    "load_amazon_photo",
    "load_cifar10",
    "load_esc50",
    "load_fashion_mnist",
    "load_fsdd",
    "present_datasets",
    "read_idx",
]

SUPPLEMENT_DATASETS = ("fashion_mnist", "cifar10", "fsdd", "esc50", "amazon_photo",
                       "amazon_computers")


#: Where each loader looks when ``path`` is None: (variable, subfolder of $REFIMPL_DATA,
#: a file that must be there).
_LOCATIONS = {
    "fashion_mnist": ("REFIMPL_FASHION_MNIST", "fashion_mnist", None),
    "cifar10": ("REFIMPL_CIFAR10", "cifar10", None),
    "fsdd": ("REFIMPL_FSDD", "fsdd", None),
    "esc50": ("REFIMPL_ESC50", "esc50", "meta/esc50.csv"),
    "amazon_photo": ("REFIMPL_AMAZON", "amazon", "amazon_electronics_photo.npz"),
    "amazon_computers": ("REFIMPL_AMAZON", "amazon", "amazon_electronics_computers.npz"),
}


def present_datasets() -> tuple:
    """The supplement's data sets (Table 1) whose local copy is in place.

    A data set is present when its variable, or ``$REFIMPL_DATA/<subfolder>``, names an
    existing folder (holding ``meta/esc50.csv`` for ESC-50, the npz file for Amazon);
    the loader still checks every file it reads.

    Returns
    -------
    tuple of str
        Names of :data:`SUPPLEMENT_DATASETS`, in that order.
    """
    out = []
    for name in SUPPLEMENT_DATASETS:
        var, sub, must = _LOCATIONS[name]
        where = (Path(os.environ[var]) if os.environ.get(var) else
                 Path(os.environ["REFIMPL_DATA"]) / sub if os.environ.get("REFIMPL_DATA")
                 else None)
        if where is None or not where.exists():
            continue
        if must is None or (where / must).is_file() or where.name == must:
            out.append(name)
    return tuple(out)


# --------------------------------------------------------------------------- containers
@dataclass(frozen=True, eq=False, repr=False)
class GraphDataset(Dataset):
    """A :class:`Dataset` of graph nodes that keeps the graph: the Amazon Photo / Computers
    sets (supplement Sec. 3.1) and the node-classification graphs of the paper's
    Appendix G.2 (:mod:`refimpl.baselines.graph_data`).

    The rows of ``X_train``, ``X_val``, ``X_test`` are the nodes ``nodes_train``,
    ``nodes_val``, ``nodes_test`` of ``adjacency`` (supplement Sec. 3.1: "an edge between
    two products when frequently purchased [together]"); every node is in one split.

    Attributes
    ----------
    adjacency : scipy.sparse.csr_matrix, shape (n_nodes, n_nodes)
        Symmetric 0/1 adjacency without self-loops, in node order;
        ``adjacency.nnz`` counts each undirected edge twice (Table 1's "#Edges").
    nodes_train, nodes_val, nodes_test : ndarray of int64
        The node index of every row of the matching split.
    X : ndarray (n_nodes, n_features)
        The features of every node in node order (the splits' rows put back).
    y : ndarray of int64 (n_nodes,)
        The class index of every node in node order.
    """

    adjacency: object = None
    nodes_train: np.ndarray | None = None
    nodes_val: np.ndarray | None = None
    nodes_test: np.ndarray | None = None

    @classmethod
    def from_nodes(cls, X, y, adjacency, parts, *, standardize=True, classes=None,
                   feature_names=None, name="graph") -> "GraphDataset":
        """The graph ``adjacency`` whose node i has features ``X[i]`` and label ``y[i]``,
        split into the node index arrays ``parts`` = (train, val, test) and standardized
        with the training nodes' statistics (as :func:`refimpl.datasets.split_standardize`;
        supplement Sec. 3.1's fixed partitions).  ``adjacency``: a scipy CSR matrix."""
        parts = tuple(np.asarray(p, dtype=np.int64) for p in parts)
        return _fixed_split(X, y, parts, standardize=standardize, classes=classes,
                            feature_names=feature_names, name=name, cls=cls,
                            adjacency=adjacency, nodes_train=parts[0],
                            nodes_val=parts[1], nodes_test=parts[2])

    def _by_node(self, part):
        n = self.adjacency.shape[0]
        first = getattr(self, f"{part}_train")
        out = np.empty((n,) + first.shape[1:], dtype=first.dtype)
        for split in ("train", "val", "test"):
            out[getattr(self, f"nodes_{split}")] = getattr(self, f"{part}_{split}")
        return out

    @cached_property
    def X(self) -> np.ndarray:
        return self._by_node("X")

    @cached_property
    def y(self) -> np.ndarray:
        return self._by_node("y")


def _fixed_split(X, y, parts, *, standardize, classes=None, feature_names=None, name,
                 cls=Dataset, **extra) -> Dataset:
    """A Dataset from given train / val / test row indices (Table 1's fixed partitions),
    standardized with the training statistics exactly as
    :func:`refimpl.datasets.split_standardize` does (divide by 1 where the std is 0)."""
    X = np.asarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name}: the features contain NaN or infinite values")
    codes, classes = _encode(np.asarray(y), classes)
    tr, va, te = (np.asarray(p, dtype=np.int64) for p in parts)
    Xs = [X[tr], X[va], X[te]]
    if standardize and tr.size:
        mu, s = Xs[0].mean(axis=0), _feature_scale(Xs[0])
        Xs = [(A - mu) / s for A in Xs]
    if feature_names is not None:
        feature_names = tuple(str(f) for f in feature_names)
    return cls(X_train=np.ascontiguousarray(Xs[0]), y_train=codes[tr],
               X_val=np.ascontiguousarray(Xs[1]), y_val=codes[va],
               X_test=np.ascontiguousarray(Xs[2]), y_test=codes[te],
               classes=np.asarray(classes), feature_names=feature_names, name=name, **extra)


def _carve_val(y, train, val_size, seed):
    """Split a published training part into train / validation (stratified, seeded);
    ``val_size = 0`` keeps the supplement's "no validation set" (Table 1: ``60000/-/10000``)."""
    if not 0.0 <= float(val_size) < 1.0:
        raise ValueError(f"val_size: expected a fraction in [0, 1), got {val_size}")
    if val_size == 0:
        return train, np.zeros(0, np.int64)
    tr, va, _ = stratified_split(np.asarray(y)[train], seed=seed, val_size=val_size,
                                 test_size=0.0)
    return train[np.sort(tr)], train[np.sort(va)]


# --------------------------------------------------------------------------- Fashion-MNIST
_FMNIST_SOURCE = "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)"
_FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(f) -> np.ndarray:
    """Read an idx file (gzip-compressed when the name ends in ``.gz``), as published for
    (Fashion-)MNIST, the image data of the supplement's Table 1.

    Format: 2 zero bytes, a type byte (0x08 unsigned byte, 0x09 signed byte, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), a dimension count ``d``, ``d`` big-endian
    uint32 sizes, then the values in C order, big-endian.

    Parameters
    ----------
    f : str or Path

    Returns
    -------
    ndarray
        Shape the ``d`` sizes, native byte order.

    Raises
    ------
    ValueError
        On a bad header or a size that does not match the data.
    """
    f = Path(f)
    opener = gzip.open if f.name.endswith(".gz") else open
    with opener(f, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{f}: not an idx file (bad magic number {raw[:4].hex()})")
    d = raw[3]
    shape = struct.unpack(f">{d}I", raw[4:4 + 4 * d])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * d)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{f}: header says shape {shape} ({int(np.prod(shape))} values), "
                         f"the file holds {data.size}")
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def load_fashion_mnist(path=None, *, seed=0, val_size=0.0, standardize=True) -> Dataset:
    """Fashion-MNIST (supplement Sec. 3.1, Table 1) from the four published idx gzip files.

    Features: the 28 x 28 pixel values scaled to [0, 1] (``/255``), row-major (784), then
    standardized per pixel with the training statistics (the supplement's "followed by
    normalization"; ``standardize=False`` keeps [0, 1]).  Partition (Table 1): the
    published 60000 training / 10000 test images, no validation set; ``val_size > 0``
    holds out that stratified fraction of the training images (seeded) as validation.
    Holds 70000 x 784 float64 (440 MB) in memory.

    Parameters
    ----------
    path : str or Path, optional
        Folder with ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` (uncompressed copies
        without ``.gz`` are read too); default ``$REFIMPL_FASHION_MNIST``, then
        ``$REFIMPL_DATA/fashion_mnist/``.
    seed : int
        Seed of the validation hold-out (unused when ``val_size`` is 0).
    val_size : float
    standardize : bool

    Returns
    -------
    Dataset
        ``classes`` are the ten class names.
    """
    kw = dict(var="REFIMPL_FASHION_MNIST", subfolder="fashion_mnist", what="Fashion-MNIST",
              source=_FMNIST_SOURCE)
    where = _locate(path, expected=", ".join(f + ".gz" for f in _FMNIST_FILES), **kw)
    arrays = []
    for stem in _FMNIST_FILES:
        f = where / stem if (where / stem).is_file() else _require(where, stem + ".gz", **kw)
        arrays.append(read_idx(f))
    Xtr, ytr, Xte, yte = arrays
    for X, y, part in ((Xtr, ytr, "train"), (Xte, yte, "t10k")):
        if X.ndim != 3 or y.shape != (X.shape[0],):
            raise ValueError(f"Fashion-MNIST: {part} images {X.shape} and labels {y.shape} "
                             "do not match (expected (n, rows, cols) and (n,))")
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise ValueError(f"Fashion-MNIST: train images {Xtr.shape[1:]} and test images "
                         f"{Xte.shape[1:]} differ in size")
    X = np.concatenate([Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)]) / 255.0
    y = np.concatenate([ytr, yte]).astype(np.int64)
    if y.min() < 0 or y.max() >= len(_FMNIST_CLASSES):
        raise ValueError(f"Fashion-MNIST: labels must lie in 0..9, got {y.min()}..{y.max()}")
    train, val = _carve_val(y, np.arange(len(ytr)), val_size, seed)
    rows, cols = Xtr.shape[1:]
    names = [f"pixel_{r}_{c}" for r in range(rows) for c in range(cols)]
    ds = _fixed_split(X, y, (train, val, np.arange(len(ytr), len(y))), standardize=standardize,
                      classes=np.arange(10), feature_names=names, name="fashion_mnist")
    return _with_classes(ds, np.array(_FMNIST_CLASSES))


def _with_classes(ds, classes):
    """``ds`` with the class names of the published files as ``classes``."""
    return replace(ds, classes=classes)


# --------------------------------------------------------------------------- CIFAR-10
_CIFAR_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 python version)"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
#: ITU-R BT.601 luma weights (those of PIL's ``convert("L")``).
_LUMA = np.array([0.299, 0.587, 0.114])


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only: a pickle that names any other
    callable is refused (unpickling arbitrary files runs arbitrary code)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}                 # bytes in protocol-2 pickles of Python 3

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 "
                                         "batch (only NumPy arrays are expected)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # numpy.core in NumPy 2
            return super().find_class(module, name)


def _unpickle(f: Path) -> dict:
    with open(f, "rb") as fh:
        d = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    if not isinstance(d, dict):
        raise ValueError(f"{f}: expected a pickled dict, got {type(d).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def load_cifar10(path=None, *, seed=0, val_size=0.0, grayscale=True,
                 standardize=True) -> Dataset:
    """CIFAR-10 (supplement Sec. 3.1, Table 1) from the published Python pickle batches.

    Published format: ``data_batch_1 .. data_batch_5`` and ``test_batch``, each a pickled
    dict with ``b"data"`` (uint8, 10000 x 3072: the red, green, blue 32 x 32 planes, each
    row-major) and ``b"labels"`` (list of 0..9); ``batches.meta`` has ``b"label_names"``.
    Only NumPy arrays and plain containers are unpickled.

    Features: pixel values scaled to [0, 1]; with ``grayscale`` (default) the luma
    ``0.299 R + 0.587 G + 0.114 B`` of each pixel, 32 x 32 = 1024 features, as Table 1
    lists ("Normalized grayscale", #Features 32 * 32; the weights are ITU-R BT.601, a
    documented choice: the supplement does not give them); otherwise the 3072 values in
    the file's order.  Then standardized per feature with the training statistics.
    Partition: the published 50000 / 10000, no validation (``val_size`` as in
    :func:`load_fashion_mnist`).

    Parameters
    ----------
    path : str or Path, optional
        ``cifar-10-batches-py/`` or the folder holding it; default ``$REFIMPL_CIFAR10``,
        then ``$REFIMPL_DATA/cifar10/``.
    seed, val_size, standardize
        See :func:`load_fashion_mnist`.
    grayscale : bool

    Returns
    -------
    Dataset
        ``classes`` are the label names of ``batches.meta`` (``0..9`` without it).
    """
    kw = dict(var="REFIMPL_CIFAR10", subfolder="cifar10", what="CIFAR-10", source=_CIFAR_SOURCE)
    where = _locate(path, expected="cifar-10-batches-py/ (data_batch_1..5, test_batch)", **kw)
    if (where / "cifar-10-batches-py").is_dir():
        where = where / "cifar-10-batches-py"
    parts = []
    for stem in (*_CIFAR_TRAIN, "test_batch"):
        d = _unpickle(_require(where, stem, **kw))
        if "data" not in d or "labels" not in d:
            raise ValueError(f"{where / stem}: expected the keys b'data' and b'labels'")
        data = np.asarray(d["data"])
        labels = np.asarray(d["labels"], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
            raise ValueError(f"{where / stem}: expected data (n, 3072) and n labels, got "
                             f"{data.shape} and {labels.shape}")
        parts.append((data, labels))
    X = np.concatenate([p[0] for p in parts]).astype(np.float64) / 255.0
    y = np.concatenate([p[1] for p in parts])
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"CIFAR-10: labels must lie in 0..9, got {y.min()}..{y.max()}")
    if grayscale:
        X = np.tensordot(X.reshape(-1, 3, 1024), _LUMA, axes=([1], [0]))
        names = [f"gray_{r}_{c}" for r in range(32) for c in range(32)]
    else:
        names = [f"{ch}_{r}_{c}" for ch in "rgb" for r in range(32) for c in range(32)]
    n_train = sum(len(p[1]) for p in parts[:-1])
    train, val = _carve_val(y, np.arange(n_train), val_size, seed)
    ds = _fixed_split(X, y, (train, val, np.arange(n_train, len(y))), standardize=standardize,
                      classes=np.arange(10), feature_names=names, name="cifar10")
    meta = where / "batches.meta"
    if meta.is_file():
        names = _unpickle(meta).get("label_names")
        if names is not None and len(names) == 10:
            ds = _with_classes(ds, np.array([n.decode() if isinstance(n, bytes) else str(n)
                                             for n in names]))
    return ds


# --------------------------------------------------------------------------- audio features
_CHROMA = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
AUDIO_FEATURE_NAMES = (tuple(f"mfcc_{i}" for i in range(40)) + tuple(f"chroma_{c}" for c in _CHROMA)
                       + tuple(f"mel_{i}" for i in range(128)))


def _librosa():
    try:
        import librosa
    except ImportError as exc:
        raise ImportError('the audio data sets need librosa: install the "audio" extra '
                          '(pip install -e ".[audio]", i.e. librosa and soundfile)') from exc
    return librosa


def audio_features(signal, sr, *, average=True) -> np.ndarray:
    """The supplement's audio features (Sec. 3.1): 40 MFCC, 12 chroma, 128 mel per time step.

    Computed with librosa's defaults (2048-sample frames, hop 512, centred):
    ``feature.mfcc(n_mfcc=40)``, ``feature.chroma_stft(n_chroma=12)`` (index 0 = C) and
    ``feature.melspectrogram(n_mels=128)`` (power, no dB: a documented choice, the
    supplement does not say), concatenated per time step into 180 values and, with
    ``average``, averaged over the time steps ("the average across all time steps ... as
    the input to the network").

    Parameters
    ----------
    signal : (n_samples,) array
        Mono audio.
    sr : int
        Sample rate in Hz.
    average : bool

    Returns
    -------
    ndarray
        (180,) with ``average``, else (n_frames, 180); the order of
        ``AUDIO_FEATURE_NAMES``.

    Raises
    ------
    ImportError
        Without librosa (the ``audio`` extra).
    ValueError
        On an empty or non-finite signal.
    """
    librosa = _librosa()
    y = np.asarray(signal, dtype=np.float32)
    if y.ndim != 1 or y.size == 0 or not np.all(np.isfinite(y)):
        raise ValueError(f"signal: expected a non-empty finite 1-D array, got shape {y.shape}")
    sr = int(sr)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_chroma=12)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128)
    F = np.concatenate([mfcc, chroma, mel], axis=0).T.astype(np.float64)  # (frames, 180)
    return F.mean(axis=0) if average else F


def _read_audio(f: Path, sr):
    """Mono samples of a WAV (soundfile; channels averaged, as ``librosa.load``) and its
    rate, resampled to ``sr`` by ``librosa.resample`` unless ``sr`` is None."""
    librosa = _librosa()
    import soundfile

    data, rate = soundfile.read(str(f), dtype="float32", always_2d=True)
    y = data.mean(axis=1)
    if sr is not None and int(sr) != rate:
        y, rate = librosa.resample(y, orig_sr=rate, target_sr=int(sr)), int(sr)
    return y, rate


def _audio_matrix(files, sr, features):
    features = audio_features if features is None else features
    rows = []
    for f in files:
        y, rate = _read_audio(f, sr)
        rows.append(np.asarray(features(y, rate), dtype=np.float64).reshape(-1))
    if len({r.size for r in rows}) > 1:
        raise ValueError("features: returned vectors of different lengths")
    return np.array(rows)


# --------------------------------------------------------------------------- FSDD
_FSDD_SOURCE = "https://github.com/Jakobovski/free-spoken-digit-dataset (recordings/)"
_FSDD_RE = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def load_fsdd(path=None, *, seed=0, n_train=30, n_val=10, sr=22050, features=None,
              standardize=True) -> Dataset:
    """Free Spoken Digit Dataset (supplement Sec. 3.1, Table 1) from its WAV recordings.

    Published format: ``recordings/{digit}_{speaker}_{index}.wav`` (8 kHz mono; six
    speakers x ten digits x 50 recordings, index 0..49).  Partition (supplement Sec. 3.1):
    for each speaker and digit, the recordings in the order of their index: the first
    ``n_train`` (30) for training, the next ``n_val`` (10) for validation, the rest (10)
    for testing: 1800 / 600 / 600.  Features: :func:`audio_features` averaged over time
    (180), after resampling to ``sr``.  ``sr = 22050`` (librosa's default) is a documented
    inference: at hop 512, Table 1's "7 ~ 99 time steps" are 0.14-2.3 s of audio at
    22050 Hz, while at the native 8 kHz 99 steps would need 6.3 s recordings.

    Parameters
    ----------
    path : str or Path, optional
        ``recordings/`` or the folder holding it; default ``$REFIMPL_FSDD``, then
        ``$REFIMPL_DATA/fsdd/``.
    seed : int
        Unused (the partition is fixed); accepted for a uniform signature.
    n_train, n_val : int
    sr : int or None
        Sample rate to resample to (None: the file's).
    features : callable, optional
        ``features(signal, sr) -> 1-D array``; default :func:`audio_features`.
    standardize : bool

    Returns
    -------
    Dataset
        ``classes`` are the digits 0..9.

    Raises
    ------
    ImportError
        Without librosa (the ``audio`` extra).
    """
    del seed
    kw = dict(var="REFIMPL_FSDD", subfolder="fsdd", what="FSDD", source=_FSDD_SOURCE)
    where = _locate(path, expected="recordings/{digit}_{speaker}_{index}.wav", **kw)
    if (where / "recordings").is_dir():
        where = where / "recordings"
    recs = []
    for f in sorted(where.iterdir()):
        m = _FSDD_RE.match(f.name)
        if m:
            recs.append((m.group(2), int(m.group(1)), int(m.group(3)), f))
    if not recs:
        _require(where, "0_jackson_0.wav", **kw)
    if n_train < 0 or n_val < 0:
        raise ValueError(f"n_train, n_val: expected counts >= 0, got {n_train}, {n_val}")
    recs.sort(key=lambda r: (r[0], r[1], r[2]))
    parts = ([], [], [])
    rank, prev = 0, None
    for row, (speaker, digit, _, _) in enumerate(recs):
        rank = rank + 1 if (speaker, digit) == prev else 0
        prev = (speaker, digit)
        parts[0 if rank < n_train else 1 if rank < n_train + n_val else 2].append(row)
    X = _audio_matrix([r[3] for r in recs], sr, features)
    y = np.array([r[1] for r in recs], dtype=np.int64)
    names = AUDIO_FEATURE_NAMES if features is None else None
    return _fixed_split(X, y, parts, standardize=standardize, classes=np.arange(10),
                        feature_names=names, name="fsdd")


# --------------------------------------------------------------------------- ESC-50
_ESC_SOURCE = "https://github.com/karolpiczak/ESC-50 (audio/ and meta/esc50.csv)"


def load_esc50(path=None, *, seed=0, folds=((1, 2, 3), (4,), (5,)), sr=None, features=None,
               standardize=True) -> Dataset:
    """ESC-50 (supplement Sec. 3.1, Table 1) from its WAVs and ``meta/esc50.csv``.

    Published format: ``audio/{fold}-{src}-{take}-{target}.wav`` (5 s, 44.1 kHz mono) and
    ``meta/esc50.csv`` with the columns ``filename, fold, target, category, esc10,
    src_file, take``.  Partition (supplement Sec. 3.1): folds 1-3 training, fold 4
    validation, fold 5 test (1200 / 400 / 400).  Features: :func:`audio_features`
    averaged over time at the native rate (``sr=None``: 44.1 kHz gives Table 1's 431 time
    steps per clip).

    Parameters
    ----------
    path : str or Path, optional
        The folder holding ``audio/`` and ``meta/``; default ``$REFIMPL_ESC50``, then
        ``$REFIMPL_DATA/esc50/``.
    seed : int
        Unused (the partition is fixed).
    folds : three tuples of int
        The train, validation and test folds.
    sr : int or None
    features : callable, optional
        See :func:`load_fsdd`.
    standardize : bool

    Returns
    -------
    Dataset
        ``classes`` are the 50 category names, ordered by ``target``.

    Raises
    ------
    ImportError
        Without librosa (the ``audio`` extra).
    """
    del seed
    kw = dict(var="REFIMPL_ESC50", subfolder="esc50", what="ESC-50", source=_ESC_SOURCE)
    where = _locate(path, expected="audio/*.wav and meta/esc50.csv", **kw)
    meta = _require(where, "meta/esc50.csv", **kw)
    with open(meta, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"filename", "fold", "target", "category"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{meta}: missing column(s) {sorted(missing)}")
        rows = [(r["filename"], int(r["fold"]), int(r["target"]), r["category"]) for r in reader]
    fold_of = {}
    for k, fs in enumerate(folds):
        for fo in fs:
            if fo in fold_of:
                raise ValueError(f"folds: fold {fo} is in two parts")
            fold_of[int(fo)] = k
    rows = [r for r in rows if r[1] in fold_of]
    if not rows:
        raise ValueError(f"{meta}: no clip in folds {folds}")
    files = [_require(where, f"audio/{r[0]}", **kw) for r in rows]
    X = _audio_matrix(files, sr, features)
    y = np.array([r[2] for r in rows], dtype=np.int64)
    parts = tuple(np.flatnonzero([fold_of[r[1]] == k for r in rows]) for k in range(3))
    targets = np.unique(y)
    cat = {r[2]: r[3] for r in rows}
    ds = _fixed_split(X, y, parts, standardize=standardize, classes=targets,
                      feature_names=AUDIO_FEATURE_NAMES if features is None else None,
                      name="esc50")
    return _with_classes(ds, np.array([cat[t] for t in targets]))


# --------------------------------------------------------------------------- Amazon
_AMAZON_SOURCE = ("https://github.com/shchur/gnn-benchmark (data/npz/amazon_electronics_"
                  "{photo,computers}.npz, Shchur et al. 2018)")


def _npz_csr(f, npz, prefix):
    import scipy.sparse as sp

    keys = [f"{prefix}_{k}" for k in ("data", "indices", "indptr", "shape")]
    if not all(k in npz for k in keys):
        keys = [f"{prefix}_matrix.{k}" for k in ("data", "indices", "indptr", "shape")]
    if not all(k in npz for k in keys):
        raise ValueError(f"{f}: expected the arrays {prefix}_data, {prefix}_indices, "
                         f"{prefix}_indptr, {prefix}_shape")
    return sp.csr_matrix((npz[keys[0]], npz[keys[1]], npz[keys[2]]),
                         shape=tuple(int(s) for s in npz[keys[3]]))


def load_amazon(which, path=None, *, seed=0, n_train=100, n_val=100,
                standardize=True) -> GraphDataset:
    """Amazon Photo or Computers (supplement Sec. 3.1, Table 1) from the published npz.

    Published format (Shchur et al. 2018): ``amazon_electronics_{photo,computers}.npz``
    holding the CSR parts of the node attributes ``attr_data, attr_indices, attr_indptr,
    attr_shape`` (bag-of-words, 745 / 767 columns), the co-purchase adjacency
    ``adj_data, adj_indices, adj_indptr, adj_shape`` and ``labels`` (8 / 10 classes).
    Features: the attribute rows (dense float64).  The graph is kept as a symmetric 0/1
    adjacency without self-loops (:class:`GraphDataset`).  Partition (supplement Sec. 3.1):
    for each class ``n_train`` (100) random nodes for training, ``n_val`` (100) for
    validation, the rest for testing (Photo 800 / 800 / 6050, Computers 1000 / 1000 / 11752),
    drawn with ``np.random.default_rng(seed)``.

    Parameters
    ----------
    which : {"photo", "computers"}
    path : str or Path, optional
        The npz file or its folder; default ``$REFIMPL_AMAZON``, then
        ``$REFIMPL_DATA/amazon/``.
    seed : int
    n_train, n_val : int
        Nodes per class.
    standardize : bool

    Returns
    -------
    GraphDataset

    Raises
    ------
    ValueError
        On a malformed file or a class with ``n_train + n_val`` nodes or fewer.
    """
    if which not in ("photo", "computers"):
        raise ValueError(f"which: expected 'photo' or 'computers', got {which!r}")
    fname = f"amazon_electronics_{which}.npz"
    kw = dict(var="REFIMPL_AMAZON", subfolder="amazon", what=f"Amazon {which.capitalize()}",
              source=_AMAZON_SOURCE)
    where = _locate(path, expected=fname, **kw)
    f = where if where.is_file() else _require(where, fname, **kw)
    with np.load(f, allow_pickle=False) as npz:
        attr = _npz_csr(f, npz, "attr")
        adj = _npz_csr(f, npz, "adj")
        if "labels" not in npz:
            raise ValueError(f"{f}: expected the array 'labels'")
        y = np.asarray(npz["labels"]).astype(np.int64)
    n = attr.shape[0]
    if adj.shape != (n, n) or y.shape != (n,):
        raise ValueError(f"{f}: attributes {attr.shape}, adjacency {adj.shape} and labels "
                         f"{y.shape} do not describe the same nodes")
    adj = ((adj + adj.T) != 0).astype(np.float64).tocsr()       # undirected co-purchases
    adj.setdiag(0.0)
    adj.eliminate_zeros()
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for c in np.unique(y):
        nodes = rng.permutation(np.flatnonzero(y == c))
        if nodes.size <= n_train + n_val:
            raise ValueError(f"{f}: class {c} has {nodes.size} nodes, not more than "
                             f"n_train + n_val = {n_train + n_val}")
        parts[0].append(nodes[:n_train])
        parts[1].append(nodes[n_train:n_train + n_val])
        parts[2].append(nodes[n_train + n_val:])
    parts = tuple(np.sort(np.concatenate(p)) for p in parts)
    return GraphDataset.from_nodes(attr.toarray(), y, adj, parts, standardize=standardize,
                                   feature_names=[f"word_{j}" for j in range(attr.shape[1])],
                                   name=f"amazon_{which}")


def load_amazon_photo(path=None, *, seed=0, **kwargs) -> GraphDataset:
    """Amazon Photo (supplement Table 1: 7650 nodes, 745 features, 8 classes); see
    :func:`load_amazon`."""
    return load_amazon("photo", path, seed=seed, **kwargs)


def load_amazon_computers(path=None, *, seed=0, **kwargs) -> GraphDataset:
    """Amazon Computers (supplement Table 1: 13752 nodes, 767 features, 10 classes); see
    :func:`load_amazon`."""
    return load_amazon("computers", path, seed=seed, **kwargs)
