"""MNIST: find, download, verify and parse the four IDX files, then split them.

Where the files are looked for
------------------------------
MNIST is the four standard IDX files ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each either gzip-compressed (``.gz``) or raw. They are
looked for in these roots, in order, and in each root either directly in it or in
its ``mnist/`` subfolder:

1. the ``data_dir`` argument of :func:`load_mnist` / :func:`find_data_dir`;
2. the environment variable ``FF_NUMPY_DATA`` (for example
   ``export FF_NUMPY_DATA=../shared/data``);
3. the download cache, :func:`default_cache_dir`: ``$FF_NUMPY_CACHE`` if set,
   else ``<repo>/data`` when the package runs from a source checkout (the folder
   above ``ff_numpy/`` holds ``setup.cfg``), else ``~/.cache/ff_numpy``.

The first folder holding all four files wins. If none does and downloading is
allowed, the missing files are downloaded into ``<cache>/mnist`` from the mirrors
in :data:`MIRRORS`, in order. A download is written to a temporary file in the
same folder and renamed only once the SHA-256 of its *decompressed* bytes matches
:data:`SHA256`, so an interrupted or corrupt download never leaves a file at the
final path. No path is ever taken relative to the working directory (except a
relative path that the caller gives explicitly).

Validation
----------
Every problem with the data raises :class:`DataError`, a :class:`ValueError`,
whose message names the file and the problem: wrong magic number or data type,
truncated file or trailing bytes, image size other than 28x28, labels outside
0..9, image and label counts that disagree, a corrupt gzip stream, a checksum
mismatch (a local file with an official name and the official size is verified
against the official SHA-256 too), and missing files (the message lists every
folder searched).

The split
---------
``train`` is the first ``60_000 - n_validation`` images of the official training
set (50,000 by default), ``validation`` the last ``n_validation`` (10,000 by
default; 0 gives an empty split), ``test`` the official 10,000 test images.
Pixels are float32 scaled to [0, 1] (divided by 255), labels int64.

Arrays returned by this module are read-only (``x.flags.writeable`` is False):
parsed files are cached per process, keyed by resolved path, modification time and
size, so loading twice is instant and no caller can corrupt what another caller
sees. Take ``.copy()`` to modify them.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import pathlib
import re
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

__all__ = [
    "MIRRORS",
    "MNIST",
    "MNIST_FILES",
    "SHA256",
    "DataError",
    "Split",
    "clear_cache",
    "default_cache_dir",
    "find_data_dir",
    "load_mnist",
    "read_idx",
]

#: Base URLs tried in order; each serves ``<name>.gz`` for the four names below.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The four official file names (without ``.gz``).
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: SHA-256 of the *decompressed* official files (gzip headers differ between mirrors).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Size in bytes of the decompressed official files (header + data).
SIZES = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}

#: Seconds a download may block on one network operation before it is abandoned.
TIMEOUT = 30.0

_IMAGE_SHAPE = (28, 28)
_N_CLASSES = 10
_CHUNK = 1 << 16
_IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
_HINT = (
    "Point FF_NUMPY_DATA at a folder holding the four files (directly or in a mnist/ "
    "subfolder), e.g. `export FF_NUMPY_DATA=../shared/data` from the project root, "
    "or pass data_dir=..."
)


class DataError(ValueError):
    """A data file is missing, malformed or fails its checksum.

    The message names the file (or the folders searched) and the problem.
    """


@dataclass(frozen=True)
class Split:
    """One part of a data set: inputs and their labels.

    Parameters
    ----------
    x : ndarray, shape (N, D), float32
        One example per row; for MNIST ``D = 784`` pixels scaled to [0, 1].
    y : ndarray, shape (N,), int64
        Class labels, 0..9 for MNIST.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        x_shape, y_shape = np.shape(self.x), np.shape(self.y)
        if len(x_shape) != 2 or len(y_shape) != 1 or x_shape[0] != y_shape[0]:
            raise ValueError(
                f"Split expects x of shape (N, D) and y of shape (N,), "
                f"got x {x_shape} and y {y_shape}"
            )

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class MNIST:
    """MNIST split into training, validation and test sets.

    Parameters
    ----------
    train : Split
        First ``60_000 - n_validation`` official training images (50,000 by default).
    validation : Split
        Last ``n_validation`` official training images (10,000 by default).
    test : Split
        The official 10,000 test images.
    source : str
        The folder the four files were read from.
    """

    train: Split
    validation: Split
    test: Split
    source: str


# --------------------------------------------------------------------------- where


def default_cache_dir() -> pathlib.Path:
    """Root of the download cache; MNIST goes in its ``mnist/`` subfolder.

    Returns
    -------
    pathlib.Path
        ``$FF_NUMPY_CACHE`` if that environment variable is set; else ``<repo>/data``
        when the package runs from a source checkout (the folder above ``ff_numpy/``
        holds ``setup.cfg``); else ``$XDG_CACHE_HOME/ff_numpy``, by default
        ``~/.cache/ff_numpy``. The folder need not exist yet.
    """
    override = os.environ.get("FF_NUMPY_CACHE")
    if override:
        return pathlib.Path(override).expanduser().absolute()
    checkout = pathlib.Path(__file__).resolve().parent.parent
    if (checkout / "setup.cfg").is_file():
        return checkout / "data"
    cache_home = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache_home).expanduser().absolute() / "ff_numpy"


def _roots(data_dir=None) -> list[tuple[pathlib.Path | None, str]]:
    """Roots to search, in order, each with where it came from (None: variable unset)."""
    roots = []
    if data_dir is not None:
        roots.append((pathlib.Path(data_dir).expanduser().absolute(), "data_dir argument"))
    env = os.environ.get("FF_NUMPY_DATA")
    if env:
        roots.append((pathlib.Path(env).expanduser().absolute(), "$FF_NUMPY_DATA"))
    else:
        roots.append((None, "$FF_NUMPY_DATA"))
    roots.append((default_cache_dir(), "download cache"))
    return roots


def _find_file(folder: pathlib.Path, name: str) -> pathlib.Path | None:
    """``folder/name`` (raw) or else ``folder/name.gz``, whichever exists first."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _search(data_dir=None):
    """Search the roots; return (folder, {name: path}) of the first complete one.

    Returns ``(None, searched)`` when no folder holds all four files, where
    ``searched`` lists one line per folder looked at.
    """
    searched = []
    for root, origin in _roots(data_dir):
        if root is None:
            searched.append(f"  ({origin} is not set)")
            continue
        for folder in (root, root / "mnist"):
            found = {name: _find_file(folder, name) for name in MNIST_FILES}
            missing = [name for name, path in found.items() if path is None]
            if not missing:
                return folder, found
            if not folder.is_dir():
                what = "no such folder"
            elif len(missing) == len(MNIST_FILES):
                what = "none of the four files"
            else:
                what = "missing " + ", ".join(f"{name}[.gz]" for name in missing)
            searched.append(f"  {folder} ({origin}): {what}")
    return None, searched


def find_data_dir(data_dir=None) -> pathlib.Path | None:
    """The first folder holding all four MNIST files, in look-up order.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Searched first (the folder itself, then its ``mnist/`` subfolder), before
        ``$FF_NUMPY_DATA`` and the download cache.

    Returns
    -------
    pathlib.Path or None
        The absolute folder, or None when no folder holds the four files. Nothing
        is downloaded and nothing is validated.
    """
    folder, _ = _search(data_dir)
    return folder


# ------------------------------------------------------------------------- parse


def _decompress(raw: bytes, path: pathlib.Path) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip stream ({exc})") from exc


def _sha256_check(data: bytes, path: pathlib.Path, name: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise DataError(
            f"{path}: SHA-256 mismatch: the file has the size of the official {name} but "
            f"its decompressed bytes hash to {digest}, expected {SHA256[name]}; it is "
            f"corrupt or modified. Replace it with a good copy, or delete it so that "
            f"load_mnist downloads it again."
        )


def _parse_idx(data: bytes, path: pathlib.Path, ndim: int | None) -> np.ndarray:
    """Validate an unsigned-byte IDX file's bytes and view them as an array."""
    expected = f"0x{0x0800 | ndim:08X}" if ndim else "0x000008NN"
    if len(data) < 4:
        raise DataError(f"{path}: truncated: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if data[:2] != b"\x00\x00":
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08X}, expected {expected}: not an IDX file"
        )
    if data[2] != 0x08:
        kind = _IDX_TYPES.get(data[2], "unknown")
        raise DataError(
            f"{path}: wrong data type byte 0x{data[2]:02X} ({kind}) in magic number "
            f"0x{magic:08X}, expected 0x08 (unsigned byte)"
        )
    if data[3] == 0 or (ndim is not None and data[3] != ndim):
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08X} ({data[3]} dimensions), expected {expected}"
        )
    n_dims = data[3]
    header = 4 + 4 * n_dims
    if len(data) < header:
        raise DataError(
            f"{path}: truncated: {len(data)} bytes, shorter than the {header}-byte header"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    size = int(np.prod(shape, dtype=np.int64))
    dims = "x".join(map(str, shape))
    if len(data) - header < size:
        raise DataError(
            f"{path}: truncated: the header announces {dims} = {size} bytes of data "
            f"but the file holds only {len(data) - header}"
        )
    if len(data) - header > size:
        raise DataError(
            f"{path}: {len(data) - header - size} extra trailing bytes after the "
            f"{dims} = {size} bytes of data the header announces"
        )
    array = np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(shape)
    array.setflags(write=False)
    return array


def _read_idx_uncached(path: pathlib.Path, ndim: int | None) -> np.ndarray:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if path.name.endswith(".gz") or data[:2] == b"\x1f\x8b":
        data = _decompress(data, path)
    name = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
    if ndim is None:
        match = re.search(r"idx(\d)", name)
        ndim = int(match.group(1)) if match else None
    array = _parse_idx(data, path, ndim)
    if name in SHA256 and len(data) == SIZES[name]:
        _sha256_check(data, path, name)
    return array


def _file_key(path) -> tuple[pathlib.Path, int, int]:
    """(resolved path, mtime in ns, size): identifies one version of a file."""
    resolved = pathlib.Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except FileNotFoundError as exc:
        raise DataError(f"{resolved}: no such file") from exc
    return resolved, stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _read_idx_cached(path, mtime_ns, size, ndim):
    return _read_idx_uncached(path, ndim)


def read_idx(path, *, ndim: int | None = None) -> np.ndarray:
    """Parse one unsigned-byte IDX file, validating it.

    The file may be raw or gzip-compressed (by its ``.gz`` name or its content).
    For the four official MNIST names whose decompressed size equals the official
    size, the SHA-256 of the decompressed bytes is verified as well.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    ndim : int, optional
        Number of dimensions the header must announce (magic number
        ``0x00000800 | ndim``). By default it is read from an ``idxN`` in the
        file's name (``idx3`` for images, ``idx1`` for labels), else any is accepted.

    Returns
    -------
    ndarray, shape given by the header, uint8
        Read-only (the parse is cached per resolved path, modification time and
        size); take ``.copy()`` to modify it.

    Raises
    ------
    DataError
        (a ValueError) naming the file and the problem: no such file, corrupt
        gzip stream, wrong magic number or data type byte, truncated data,
        trailing bytes, SHA-256 mismatch.
    """
    resolved, mtime_ns, size = _file_key(path)
    return _read_idx_cached(resolved, mtime_ns, size, ndim)


@functools.lru_cache(maxsize=2)
def _images_labels_cached(images_key, labels_key):
    """Parse and check one image file and its label file; float32 and int64."""
    images_path, labels_path = images_key[0], labels_key[0]
    images = _read_idx_uncached(images_path, ndim=3)
    labels = _read_idx_uncached(labels_path, ndim=1)
    if images.shape[1:] != _IMAGE_SHAPE:
        rows, cols = images.shape[1:]
        raise DataError(
            f"{images_path}: wrong dimensions: images are {rows}x{cols}, MNIST is 28x28"
        )
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path}: count mismatch: {len(labels)} labels but {images_path} "
            f"holds {len(images)} images"
        )
    bad = np.flatnonzero(labels >= _N_CLASSES)
    if bad.size:
        raise DataError(
            f"{labels_path}: {bad.size} labels outside 0..9, the first {labels[bad[0]]} "
            f"at index {bad[0]}"
        )
    # (N, 28, 28) uint8 -> (N, 784) float32 in [0, 1]: one pass, one division.
    x = np.divide(images.reshape(len(images), -1), np.float32(255), dtype=np.float32)
    y = labels.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def clear_cache() -> None:
    """Forget the parsed files kept by :func:`read_idx` and :func:`load_mnist`."""
    _read_idx_cached.cache_clear()
    _images_labels_cached.cache_clear()


# ---------------------------------------------------------------------- download


def _urlopen(url: str, timeout: float):
    """Open ``url`` for reading (the one place this module touches the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": "ff_numpy"})
    return urllib.request.urlopen(request, timeout=timeout)


def _content_length(response) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value is not None and str(value).isdigit() else None


def _gunzip_sha256(path: pathlib.Path, url: str) -> str:
    """SHA-256 of the decompressed content of the gzip file ``path``."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{url}: corrupt gzip stream ({exc})") from exc
    return digest.hexdigest()


def _fetch(url: str, final: pathlib.Path, name: str, progress: bool) -> None:
    """Download ``url`` to ``final`` atomically, if its decompressed SHA-256 matches."""
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    tmp = pathlib.Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _urlopen(url, TIMEOUT) as response:
            total = _content_length(response)
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=final.name,
                disable=not progress,
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise DataError(f"{url}: download incomplete: {received} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        digest = _gunzip_sha256(tmp, url)
        if digest != SHA256[name]:
            raise DataError(
                f"{url}: SHA-256 mismatch for {name}: the decompressed download hashes to "
                f"{digest}, expected {SHA256[name]}"
            )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful os.replace


def _download(folder: pathlib.Path, names, progress: bool, searched) -> None:
    """Download each of ``names`` (as ``.gz``) into ``folder``, trying every mirror."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"{folder}: cannot create the download cache ({exc}); set FF_NUMPY_CACHE to a "
            f"writable folder. {_HINT}"
        ) from exc
    for name in names:
        final = folder / f"{name}.gz"
        failures = []
        for mirror in MIRRORS:
            url = f"{mirror}{name}.gz"
            try:
                _fetch(url, final, name, progress)
                break
            except (OSError, http.client.HTTPException, DataError) as exc:
                failures.append(f"  {url}: {exc}")
        else:
            raise DataError(
                f"{final}: MNIST file not found and the download failed from every mirror:\n"
                + "\n".join(failures)
                + "\nSearched:\n"
                + "\n".join(searched)
                + f"\n{_HINT}"
            )


# -------------------------------------------------------------------------- load


def load_mnist(data_dir=None, *, download=True, n_validation=10_000, progress=True) -> MNIST:
    """Load MNIST, downloading it into the cache if it is found nowhere.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Folder searched first (itself, then its ``mnist/`` subfolder), before
        ``$FF_NUMPY_DATA`` and the download cache; see the module docstring.
    download : bool
        Download missing files into ``default_cache_dir() / "mnist"`` when no
        folder holds all four. With False, a miss raises DataError.
    n_validation : int
        How many of the last official training images form the validation split,
        ``0 <= n_validation < 60_000``; 0 gives an empty validation split.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    MNIST
        ``train.x`` shape (60_000 - n_validation, 784), ``validation.x`` shape
        (n_validation, 784), ``test.x`` shape (10_000, 784), float32 in [0, 1];
        the ``y`` arrays shape (N,) int64 in 0..9. All arrays are read-only views
        of a per-process cache.

    Raises
    ------
    DataError
        (a ValueError) naming the file and the problem, or, when the files are
        found nowhere and cannot be downloaded, listing every folder searched.
    TypeError
        If ``n_validation`` is not an integer.
    """
    if isinstance(n_validation, bool) or not isinstance(n_validation, (int, np.integer)):
        raise TypeError(f"n_validation must be an int, got {type(n_validation).__name__}")
    folder, found = _search(data_dir)
    if folder is None:
        searched = found
        if not download:
            raise DataError(
                "MNIST files (" + ", ".join(f"{n}[.gz]" for n in MNIST_FILES) + ") not "
                "found and download=False. Searched:\n" + "\n".join(searched) + f"\n{_HINT}"
            )
        folder = default_cache_dir() / "mnist"
        missing = [name for name in MNIST_FILES if _find_file(folder, name) is None]
        _download(folder, missing, progress, searched)
        found = {name: _find_file(folder, name) for name in MNIST_FILES}

    train_x, train_y = _images_labels_cached(
        _file_key(found["train-images-idx3-ubyte"]), _file_key(found["train-labels-idx1-ubyte"])
    )
    test_x, test_y = _images_labels_cached(
        _file_key(found["t10k-images-idx3-ubyte"]), _file_key(found["t10k-labels-idx1-ubyte"])
    )
    if not 0 <= n_validation < len(train_y):
        raise ValueError(
            f"n_validation must be in [0, {len(train_y)}) for the {len(train_y)} training "
            f"images in {folder}, got {n_validation}"
        )
    n_train = len(train_y) - int(n_validation)
    return MNIST(
        train=Split(train_x[:n_train], train_y[:n_train]),
        validation=Split(train_x[n_train:], train_y[n_train:]),
        test=Split(test_x, test_y),
        source=str(folder),
    )
