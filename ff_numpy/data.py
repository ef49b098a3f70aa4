"""MNIST and CIFAR-10: find, download, verify and parse the files, then split them.

Where the files are looked for
------------------------------
Both data sets are looked for in the same roots, in this order:

1. the ``data_dir`` argument of :func:`load_mnist` / :func:`load_cifar10` (and of
   :func:`find_data_dir` / :func:`find_cifar10`);
2. the environment variable ``FF_NUMPY_DATA`` (for example
   ``export FF_NUMPY_DATA=../shared/data``);
3. the download cache, :func:`default_cache_dir`: ``$FF_NUMPY_CACHE`` if set,
   else ``<repo>/data`` when the package runs from a source checkout (the folder
   above ``ff_numpy/`` holds ``setup.cfg``), else ``~/.cache/ff_numpy``.

MNIST is the four standard IDX files ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each either gzip-compressed (``.gz``) or raw, directly
in a root or in its ``mnist/`` subfolder; the first folder holding all four wins.

CIFAR-10 is the official *binary version*: the six files of :data:`CIFAR10_FILES`
in a folder ``cifar-10-batches-bin/``, or the archive ``cifar-10-binary.tar.gz``
holding that folder. In each root the loader tries, in order,
``cifar10/cifar-10-batches-bin/``, ``cifar-10-batches-bin/``,
``cifar10/cifar-10-binary.tar.gz`` and ``cifar-10-binary.tar.gz``; the first
complete one wins. See :func:`load_cifar10` for the record format and pixel order.

If nothing is found and downloading is allowed, the files are downloaded into
``<cache>/mnist`` from the mirrors in :data:`MIRRORS`, or into
``<cache>/cifar10/cifar-10-binary.tar.gz`` from :data:`CIFAR10_URL`. A download
is written to a temporary file in the same folder and renamed only once its
checksum matches (MNIST: the SHA-256 of the *decompressed* bytes, :data:`SHA256`;
CIFAR-10: the MD5 of the archive, :data:`CIFAR10_MD5`), so an interrupted or
corrupt download never leaves a file at the final path. No path is ever taken
relative to the working directory (except a relative path that the caller gives
explicitly).

Validation
----------
Every problem with the data raises :class:`DataError`, a :class:`ValueError`,
whose message names the file and the problem. MNIST: wrong magic number or data
type, truncated file or trailing bytes, image size other than 28x28, labels
outside 0..9, image and label counts that disagree, a corrupt gzip stream, a
checksum mismatch (a local file with an official name and the official size is
verified against the official SHA-256 too). CIFAR-10 local files are validated by
structure only (a rebuilt copy differs from the official archive byte for byte):
a size that is not a whole number of 3073-byte records, a file that does not hold
10,000 records, labels outside 0..9, a corrupt or incomplete archive. Missing
files raise it too, listing every folder searched.

The split
---------
``train`` is the first records of the official training set, ``validation`` its
last ``n_validation`` (MNIST: 50,000 and 10,000 by default; CIFAR-10: 45,000 and
5,000; 0 gives an empty validation split), ``test`` the official test set. Pixels
are float32 scaled to [0, 1] (divided by 255), labels int64.

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
import posixpath
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

__all__ = [
    "CIFAR10",
    "CIFAR10_CLASSES",
    "CIFAR10_FILES",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "MIRRORS",
    "MNIST",
    "MNIST_FILES",
    "SHA256",
    "DataError",
    "Dataset",
    "Split",
    "clear_cache",
    "default_cache_dir",
    "find_cifar10",
    "find_data_dir",
    "load_cifar10",
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

#: The official CIFAR-10 *binary version* archive, and the MD5 of its bytes (what
#: is downloaded is verified against it; local copies are validated by structure).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"

#: The six record files of the binary version: five training batches, then the test batch.
CIFAR10_FILES = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")

#: Class names by label (as in the archive's ``batches.meta.txt``).
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_CIFAR10_PLANE = 32 * 32  # pixels in one colour plane, row-major
_CIFAR10_PIXELS = 3 * _CIFAR10_PLANE
_CIFAR10_RECORD = 1 + _CIFAR10_PIXELS  # label byte, then the R, G and B planes
_CIFAR10_RECORDS_PER_FILE = 10_000
_CIFAR10_BUILD_SCRIPT = "../shared/data/cifar10/build_binary.py"  # from the project root


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
        One example per row; pixels scaled to [0, 1], ``D = 784`` for MNIST,
        ``D = 3072`` for CIFAR-10.
    y : ndarray, shape (N,), int64
        Class labels, 0..9 for both.
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
class Dataset:
    """A data set split into training, validation and test sets.

    Parameters
    ----------
    train : Split
        The first records of the official training set.
    validation : Split
        The last ``n_validation`` records of the official training set (may be empty).
    test : Split
        The official test set.
    source : str
        The folder (or archive) the files were read from.
    """

    train: Split
    validation: Split
    test: Split
    source: str


@dataclass(frozen=True)
class MNIST(Dataset):
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


@dataclass(frozen=True)
class CIFAR10(Dataset):
    """CIFAR-10 split into training, validation and test sets (see :func:`load_cifar10`).

    Parameters
    ----------
    train : Split
        First ``50_000 - n_validation`` official training images (45,000 by default),
        ``x`` of shape (N, 3072) in HWC order.
    validation : Split
        Last ``n_validation`` official training images (5,000 by default).
    test : Split
        The official 10,000 test images (``test_batch.bin``).
    source : str
        The ``cifar-10-batches-bin`` folder or the ``.tar.gz`` archive read.
    """


# --------------------------------------------------------------------------- where


def default_cache_dir() -> pathlib.Path:
    """Root of the download cache; MNIST goes in its ``mnist/``, CIFAR-10 in ``cifar10/``.

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


def _first_found(data_dir, places, probe):
    """Search ``places(root)`` of every root in order; return (place, found) of the first hit.

    ``probe(place)`` returns ``(found, None)`` on a hit, else ``(None, why)``. Returns
    ``(None, searched)`` when nothing is found, where ``searched`` lists one line per
    place looked at.
    """
    searched = []
    for root, origin in _roots(data_dir):
        if root is None:
            searched.append(f"  ({origin} is not set)")
            continue
        for place in places(root):
            found, why = probe(place)
            if why is None:
                return place, found
            searched.append(f"  {place} ({origin}): {why}")
    return None, searched


def _probe_folder(folder: pathlib.Path, names, find, shown, none: str):
    """``({name: path}, None)`` if ``find(folder, name)`` finds every name, else (None, why)."""
    found = {name: find(folder, name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if not missing:
        return found, None
    if not folder.is_dir():
        return None, "no such folder"
    if len(missing) == len(names):
        return None, none
    return None, "missing " + ", ".join(shown(name) for name in missing)


def _probe_mnist(folder: pathlib.Path):
    return _probe_folder(
        folder, MNIST_FILES, _find_file, lambda name: f"{name}[.gz]", "none of the four files"
    )


def _search(data_dir=None):
    """Search the roots; return (folder, {name: path}) of the first complete one.

    Returns ``(None, searched)`` when no folder holds all four files, where
    ``searched`` lists one line per folder looked at.
    """
    return _first_found(data_dir, lambda root: (root, root / "mnist"), _probe_mnist)


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


def _open(path: pathlib.Path):
    """``path`` opened for binary reading; DataError naming it if it cannot be."""
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc


def _read_bytes(path: pathlib.Path) -> bytes:
    """All bytes of ``path``; DataError naming it if it cannot be read."""
    with _open(path) as stream:
        try:
            return stream.read()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc})") from exc


def _check_labels(labels: np.ndarray, where) -> None:
    """DataError naming ``where`` if any label is outside 0..9."""
    bad = np.flatnonzero(labels >= _N_CLASSES)
    if bad.size:
        raise DataError(
            f"{where}: {bad.size} labels outside 0..9, the first {labels[bad[0]]} at index {bad[0]}"
        )


def _scale(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]: one pass, one division (into ``out`` if given)."""
    return np.divide(pixels, np.float32(255), dtype=np.float32, out=out)


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays, each made read-only (they are shared through a cache)."""
    for array in arrays:
        array.setflags(write=False)
    return arrays


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
    data = _read_bytes(path)
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
    _check_labels(labels, labels_path)
    # (N, 28, 28) uint8 -> (N, 784) float32 in [0, 1]
    return _read_only(_scale(images.reshape(len(images), -1)), labels.astype(np.int64))


def clear_cache() -> None:
    """Forget the parsed files kept by :func:`read_idx` and the loaders."""
    _read_idx_cached.cache_clear()
    _images_labels_cached.cache_clear()
    _cifar10_cached.cache_clear()


# ---------------------------------------------------------------------- download


def _urlopen(url: str, timeout: float):
    """Open ``url`` for reading (the one place this module touches the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": "ff_numpy"})
    return urllib.request.urlopen(request, timeout=timeout)


def _content_length(response) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value is not None and str(value).isdigit() else None


def _hexdigest(stream, new_hash) -> str:
    """Hex digest of everything ``stream`` yields, read in 1 MiB chunks."""
    digest = new_hash()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _gunzip_sha256(path: pathlib.Path, url: str) -> str:
    """SHA-256 of the decompressed content of the gzip file ``path``."""
    try:
        with gzip.open(path, "rb") as stream:
            return _hexdigest(stream, hashlib.sha256)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{url}: corrupt gzip stream ({exc})") from exc


def _check_mnist_download(path: pathlib.Path, url: str, name: str) -> None:
    digest = _gunzip_sha256(path, url)
    if digest != SHA256[name]:
        raise DataError(
            f"{url}: SHA-256 mismatch for {name}: the decompressed download hashes to "
            f"{digest}, expected {SHA256[name]}"
        )


def _check_cifar10_download(path: pathlib.Path, url: str) -> None:
    with path.open("rb") as stream:
        digest = _hexdigest(stream, functools.partial(hashlib.md5, usedforsecurity=False))
    if digest != CIFAR10_MD5:
        raise DataError(
            f"{url}: MD5 mismatch: the download hashes to {digest}, expected {CIFAR10_MD5}"
        )


def _fetch(url: str, final: pathlib.Path, progress: bool, check) -> None:
    """Download ``url`` to ``final`` atomically, if ``check(tmp_path, url)`` passes."""
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
        check(tmp, url)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful os.replace


def _download_file(urls, final: pathlib.Path, check, progress: bool, *, what, searched, hint):
    """Download ``final`` from the first of ``urls`` whose download passes ``check``."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"{final.parent}: cannot create the download cache ({exc}); set FF_NUMPY_CACHE "
            f"to a writable folder. {hint}"
        ) from exc
    failures = []
    for url in urls:
        try:
            _fetch(url, final, progress, check)
            return
        except (OSError, http.client.HTTPException, DataError) as exc:
            failures.append(f"  {url}: {exc}")
    raise DataError(
        f"{final}: {what} not found and the download failed from "
        + ("every mirror" if len(urls) > 1 else "its source")
        + ":\n"
        + "\n".join(failures)
        + "\nSearched:\n"
        + "\n".join(searched)
        + f"\n{hint}"
    )


def _download(folder: pathlib.Path, names, progress: bool, searched) -> None:
    """Download each of ``names`` (as ``.gz``) into ``folder``, trying every mirror."""
    for name in names:
        _download_file(
            [f"{mirror}{name}.gz" for mirror in MIRRORS],
            folder / f"{name}.gz",
            functools.partial(_check_mnist_download, name=name),
            progress,
            what="MNIST file",
            searched=searched,
            hint=_HINT,
        )


# -------------------------------------------------------------------------- load


def _check_n_validation_type(n_validation) -> None:
    if isinstance(n_validation, bool) or not isinstance(n_validation, (int, np.integer)):
        raise TypeError(f"n_validation must be an int, got {type(n_validation).__name__}")


def _split(cls, train, test, n_validation: int, source) -> Dataset:
    """``cls`` with the last ``n_validation`` training records as the validation split."""
    (train_x, train_y), (test_x, test_y) = train, test
    if not 0 <= n_validation < len(train_y):
        raise ValueError(
            f"n_validation must be in [0, {len(train_y)}) for the {len(train_y)} training "
            f"images in {source}, got {n_validation}"
        )
    n_train = len(train_y) - int(n_validation)
    return cls(
        train=Split(train_x[:n_train], train_y[:n_train]),
        validation=Split(train_x[n_train:], train_y[n_train:]),
        test=Split(test_x, test_y),
        source=str(source),
    )


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
    _check_n_validation_type(n_validation)
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
    return _split(MNIST, (train_x, train_y), (test_x, test_y), n_validation, folder)


# ---------------------------------------------------------------------- CIFAR-10


def _cifar10_places(root: pathlib.Path) -> tuple[pathlib.Path, ...]:
    """Where CIFAR-10 may sit in one root, in the order tried."""
    return (
        root / "cifar10" / CIFAR10_FOLDER,
        root / CIFAR10_FOLDER,
        root / "cifar10" / CIFAR10_ARCHIVE,
        root / CIFAR10_ARCHIVE,
    )


def _existing(folder: pathlib.Path, name: str) -> pathlib.Path | None:
    path = folder / name
    return path if path.is_file() else None


def _probe_cifar10(place: pathlib.Path):
    """(archive path or {name: path}, None) if ``place`` holds CIFAR-10, else (None, why)."""
    if place.name == CIFAR10_ARCHIVE:
        return (place, None) if place.is_file() else (None, "no such file")
    return _probe_folder(place, CIFAR10_FILES, _existing, str, "none of the six .bin files")


def _cifar10_hint(data_dir=None) -> str:
    """How to make CIFAR-10 findable; names the rebuild script if a searched root has it."""
    cache = default_cache_dir() / "cifar10"
    script, where = _CIFAR10_BUILD_SCRIPT, " from the project root"
    for root, _ in _roots(data_dir):
        if root is not None and (root / "cifar10" / "build_binary.py").is_file():
            script, where = root / "cifar10" / "build_binary.py", ""
            break
    return (
        f"Build the offline copy{where} with `mkdir -p {cache} && python {script} {cache}` "
        f"(it writes {CIFAR10_ARCHIVE} into the download cache), or point FF_NUMPY_DATA "
        f"(or data_dir=...) at a folder holding {CIFAR10_FOLDER}/ or {CIFAR10_ARCHIVE}, "
        f"directly or in a cifar10/ subfolder."
    )


def find_cifar10(data_dir=None) -> pathlib.Path | None:
    """The first CIFAR-10 binary-version folder or archive, in look-up order.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Searched first, before ``$FF_NUMPY_DATA`` and the download cache; in each
        root ``cifar10/cifar-10-batches-bin/``, ``cifar-10-batches-bin/``,
        ``cifar10/cifar-10-binary.tar.gz`` and ``cifar-10-binary.tar.gz`` are tried.

    Returns
    -------
    pathlib.Path or None
        The absolute ``cifar-10-batches-bin`` folder holding all six files or the
        ``.tar.gz`` archive, or None. Nothing is downloaded and nothing is validated.
    """
    place, _ = _first_found(data_dir, _cifar10_places, _probe_cifar10)
    return place


def _archive_members(archive: pathlib.Path, names):
    """Yield (where, name, bytes) for each of ``names`` in a tar archive, in archive order.

    The archive (gzip-compressed or plain) is read once, front to back, and members are
    read straight from it: nothing is extracted to disk. It is read to its very end so
    that gzip verifies its CRC. DataError names the archive if it is corrupt or lacks
    a member.
    """
    wanted = {posixpath.join(CIFAR10_FOLDER, name): name for name in names}
    seen = set()
    with _open(archive) as raw:
        try:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            with tarfile.open(fileobj=stream, mode="r:") as tar:
                for member in tar:
                    name = wanted.get(posixpath.normpath(member.name))
                    if name is None or name in seen or not member.isfile():
                        continue
                    seen.add(name)
                    yield f"{archive} (member {member.name})", name, tar.extractfile(member).read()
            while stream.read(_CHUNK * 16):
                pass
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{archive}: corrupt tar archive ({exc})") from exc
    missing = [member for member, name in wanted.items() if name not in seen]
    if missing:
        raise DataError(
            f"{archive}: no member {', '.join(missing)}: the archive is incomplete or not "
            f"the CIFAR-10 binary version"
        )


def _folder_files(names, paths):
    """Yield (where, name, bytes) for each of ``names``, read from the matching path."""
    for name, path in zip(names, paths):
        yield str(path), name, _read_bytes(path)


def _cifar10_records(raw: bytes, where: str, records_per_file: int):
    """Validate one record file; return its labels (n,) and colour planes (n, 3, 1024)."""
    if len(raw) % _CIFAR10_RECORD:
        raise DataError(
            f"{where}: {len(raw)} bytes, not a whole number of {_CIFAR10_RECORD}-byte "
            f"records (1 label byte + 3x32x32 pixel bytes)"
        )
    n = len(raw) // _CIFAR10_RECORD
    if n != records_per_file:
        raise DataError(f"{where}: {n} records, expected {records_per_file}")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(n, _CIFAR10_RECORD)
    labels = records[:, 0]
    _check_labels(labels, where)
    return labels, records[:, 1:].reshape(n, 3, _CIFAR10_PLANE)


@functools.lru_cache(maxsize=1)
def _cifar10_cached(keys, is_archive: bool, records_per_file: int):
    """Parse the six record files into (train_x, train_y, test_x, test_y), read-only.

    ``keys`` are :func:`_file_key` tuples: one for an archive, else one per file of
    :data:`CIFAR10_FILES`. Files are parsed one at a time straight into the float32
    result, so at most one file's bytes are held besides it.
    """
    n = records_per_file
    x = np.empty((len(CIFAR10_FILES) * n, _CIFAR10_PIXELS), dtype=np.float32)
    y = np.empty(len(CIFAR10_FILES) * n, dtype=np.int64)
    paths = [key[0] for key in keys]
    if is_archive:
        files = _archive_members(paths[0], CIFAR10_FILES)
    else:
        files = _folder_files(CIFAR10_FILES, paths)
    for where, name, raw in files:
        labels, planes = _cifar10_records(raw, where, n)
        first = CIFAR10_FILES.index(name) * n
        rows = slice(first, first + n)
        y[rows] = labels
        # (n, 3, 1024) planes -> (n, 1024, 3) pixels, channel fastest: HWC order
        _scale(planes.transpose(0, 2, 1), out=x[rows].reshape(n, _CIFAR10_PLANE, 3))
    n_train = (len(CIFAR10_FILES) - 1) * n
    return _read_only(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def _load_cifar10(data_dir, *, download, n_validation, progress, records_per_file) -> CIFAR10:
    """:func:`load_cifar10` with the records per file as a parameter (tests use a few)."""
    _check_n_validation_type(n_validation)
    place, found = _first_found(data_dir, _cifar10_places, _probe_cifar10)
    if place is None:
        searched = found
        if not download:
            raise DataError(
                f"CIFAR-10 binary version ({CIFAR10_FOLDER}/ with "
                + ", ".join(CIFAR10_FILES)
                + f", or {CIFAR10_ARCHIVE}) not found and download=False. Searched:\n"
                + "\n".join(searched)
                + f"\n{_cifar10_hint(data_dir)}"
            )
        place = found = default_cache_dir() / "cifar10" / CIFAR10_ARCHIVE
        _download_file(
            [CIFAR10_URL],
            place,
            _check_cifar10_download,
            progress,
            what="CIFAR-10 archive",
            searched=searched,
            hint=_cifar10_hint(data_dir),
        )
    if isinstance(found, dict):
        keys, is_archive = tuple(_file_key(found[name]) for name in CIFAR10_FILES), False
    else:
        keys, is_archive = (_file_key(found),), True
    train_x, train_y, test_x, test_y = _cifar10_cached(keys, is_archive, records_per_file)
    return _split(CIFAR10, (train_x, train_y), (test_x, test_y), n_validation, place)


def load_cifar10(data_dir=None, *, download=True, n_validation=5000, progress=True) -> CIFAR10:
    """Load CIFAR-10 (the official binary version), downloading it if it is found nowhere.

    The binary version holds six files of 10,000 records each, ``data_batch_1.bin``
    to ``data_batch_5.bin`` (training) and ``test_batch.bin``. A record is 3073
    bytes: one label byte (0..9, see :data:`CIFAR10_CLASSES`), then the image as
    three 32x32 colour planes, red, green, blue, each row-major (CHW order).

    Each row of ``x`` is one image in **HWC order**: pixel after pixel, row-major,
    with the three channels of a pixel adjacent (the plane layout transposed), so
    ``x[i, (r * 32 + q) * 3 + c]`` is channel ``c`` (0 red, 1 green, 2 blue) of the
    pixel at row ``r``, column ``q``, and ``x[i].reshape(32, 32, 3)`` is the image
    as matplotlib shows it. A neighbourhood of pixels is then a contiguous run of
    whole pixels, as local receptive fields want it.

    The files are found (see the module docstring) in a ``cifar-10-batches-bin/``
    folder or in the ``cifar-10-binary.tar.gz`` archive. An archive is read in one
    front-to-back pass with its members parsed straight from it, never extracted:
    that needs no writable folder (``$FF_NUMPY_DATA`` may be read-only), no second
    184 MB copy on disk that could go stale or be left half-written, and the archive
    stays the one thing validated. The price is decompression, about 1 s of the 2-3 s
    a load takes (the rest is the conversion to float32, which extracted files need
    too), paid once per process: the parse is cached.

    A download (into ``default_cache_dir() / "cifar10"``) is verified against the
    official MD5, :data:`CIFAR10_MD5`, before it is kept. Local files are validated
    by structure only (an offline copy rebuilt in the official layout differs from
    the official archive byte for byte): whole 3073-byte records, 10,000 per file,
    labels 0..9, a sound archive.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Root searched first, before ``$FF_NUMPY_DATA`` and the download cache.
    download : bool
        Download the archive into the cache when it is found nowhere. With False,
        a miss raises DataError.
    n_validation : int
        How many of the last official training images form the validation split,
        ``0 <= n_validation < 50_000``; 0 gives an empty validation split.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    CIFAR10
        ``train.x`` shape (50_000 - n_validation, 3072), ``validation.x`` shape
        (n_validation, 3072), ``test.x`` shape (10_000, 3072), float32 in [0, 1],
        HWC order; the ``y`` arrays shape (N,) int64 in 0..9. All arrays are
        read-only views of a per-process cache (737 MB of float32 for the 60,000
        images). ``source`` is the folder or archive.

    Raises
    ------
    DataError
        (a ValueError) naming the file and the problem: a size that is not a whole
        number of 3073-byte records, not 10,000 records, a label outside 0..9, a
        corrupt or incomplete archive, an MD5 mismatch of a download; or, when
        CIFAR-10 is found nowhere and cannot be downloaded, listing every place
        searched and how to build the offline copy.
    TypeError
        If ``n_validation`` is not an integer.
    """
    return _load_cifar10(
        data_dir,
        download=download,
        n_validation=n_validation,
        progress=progress,
        records_per_file=_CIFAR10_RECORDS_PER_FILE,
    )
