"""Tests for ff_numpy.data: real MNIST (when available) and synthetic bad files.

The real-data tests need the four MNIST files in ``$FF_NUMPY_DATA`` (CI sets it to
``../shared/data``) or in the download cache; they are skipped otherwise. Every
other test writes small synthetic IDX files to ``tmp_path`` and never uses the
network: the url-opening function of ``ff_numpy.data`` is replaced by a fake.
"""

import gzip
import hashlib
import io
import pathlib
import re
import urllib.error

import numpy as np
import pytest

from ff_numpy import data

REAL_DIR = data.find_data_dir()  # looked up once, before any test changes the environment
OFFICIAL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
needs_real_mnist = pytest.mark.skipif(
    REAL_DIR is None,
    reason="MNIST not found: set FF_NUMPY_DATA to a folder holding the four IDX files "
    "(e.g. export FF_NUMPY_DATA=../shared/data)",
)


# ----------------------------------------------------------------------- helpers


def idx_bytes(array, *, magic=None):
    """The bytes of an unsigned-byte IDX file holding ``array`` (magic overridable)."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write(path, raw, *, gz=None):
    """Write ``raw`` to ``path``, gzip-compressed if the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz if gz is not None else path.name.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)
    return path


def synthetic_mnist(seed=0, n_train=12, n_test=5, rows=28, cols=28, label_max=9):
    """{official name: uint8 array} of a small valid MNIST-like data set."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, label_max + 1, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, label_max + 1, n_test, dtype=np.uint8),
    }


def write_mnist(folder, arrays=None, *, gz=True):
    """Write the four files into ``folder``; return the arrays written."""
    arrays = synthetic_mnist() if arrays is None else arrays
    for name, array in arrays.items():
        write(folder / (f"{name}.gz" if gz else name), idx_bytes(array))
    return arrays


def names_file_and(path, problem):
    """``pytest.raises`` for a ValueError whose message names ``path`` and ``problem``."""
    return pytest.raises(ValueError, match=f"(?s){re.escape(str(path.resolve()))}.*{problem}")


class FakeResponse(io.BytesIO):
    """What ``urllib.request.urlopen`` returns, serving fixed bytes."""

    def __init__(self, payload, content_length=None):
        super().__init__(payload)
        length = len(payload) if content_length is None else content_length
        self.headers = {"Content-Length": str(length)}


def serve(files):
    """A fake ``_urlopen`` serving ``{name.gz: bytes}`` from any mirror; logs urls."""

    def fake_urlopen(url, timeout):
        assert timeout > 0
        fake_urlopen.urls.append(url)
        return FakeResponse(files[url.rsplit("/", 1)[1]])

    fake_urlopen.urls = []
    return fake_urlopen


def served_mnist(monkeypatch, arrays):
    """Gzip ``arrays`` for serving and put their checksums in the table."""
    files = {}
    for name, array in arrays.items():
        raw = idx_bytes(array)
        monkeypatch.setitem(data.SHA256, name, hashlib.sha256(raw).hexdigest())
        files[f"{name}.gz"] = gzip.compress(raw, mtime=0)
    return files


def listing(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    """No FF_NUMPY_DATA, an empty cache under tmp_path, no network, no parse cache."""
    monkeypatch.delenv("FF_NUMPY_DATA", raising=False)
    monkeypatch.setenv("FF_NUMPY_CACHE", str(tmp_path / "cache"))

    def no_network(url, timeout):
        raise AssertionError(f"test tried to use the network: {url}")

    monkeypatch.setattr(data, "_urlopen", no_network)
    data.clear_cache()
    yield
    data.clear_cache()


# --------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real():
    """(default split, split with n_validation=0) of the real MNIST files."""
    if REAL_DIR is None:
        pytest.skip("MNIST not found: set FF_NUMPY_DATA=../shared/data")
    default = data.load_mnist(REAL_DIR, download=False, progress=False)
    full = data.load_mnist(REAL_DIR, download=False, n_validation=0, progress=False)
    return default, full


@needs_real_mnist
def test_real_shapes_dtypes_range(real):
    mnist, _ = real
    sizes = {"train": 50_000, "validation": 10_000, "test": 10_000}
    for part, n in sizes.items():
        split = getattr(mnist, part)
        assert split.x.shape == (n, 784) and split.x.dtype == np.float32, part
        assert split.y.shape == (n,) and split.y.dtype == np.int64, part
        assert split.x.min() == 0.0 and split.x.max() == 1.0, part
        assert set(np.unique(split.y)) == set(range(10)), part
        assert not split.x.flags.writeable and not split.y.flags.writeable, part
    assert data.find_data_dir(REAL_DIR) == pathlib.Path(mnist.source)


@needs_real_mnist
def test_real_label_counts_and_pixel_mean(real):
    _, full = real
    assert full.train.x.shape == (60_000, 784) and full.validation.x.shape == (0, 784)
    assert np.bincount(full.train.y, minlength=10).tolist() == OFFICIAL_COUNTS
    assert abs(full.train.x.mean(dtype=np.float64) - 0.1307) < 1e-3


@needs_real_mnist
def test_real_validation_is_last_10000(real):
    mnist, full = real
    np.testing.assert_array_equal(mnist.train.x, full.train.x[:50_000])
    np.testing.assert_array_equal(mnist.validation.x, full.train.x[50_000:])
    np.testing.assert_array_equal(mnist.validation.y, full.train.y[50_000:])
    source = pathlib.Path(mnist.source)
    labels = data.read_idx(data._find_file(source, "train-labels-idx1-ubyte"))
    np.testing.assert_array_equal(mnist.validation.y, labels[-10_000:])


# ------------------------------------------------------- loading synthetic files


def test_load_synthetic_split_values_and_read_only(tmp_path):
    arrays = write_mnist(tmp_path / "d")
    mnist = data.load_mnist(tmp_path / "d", download=False, n_validation=4, progress=False)
    images = arrays["train-images-idx3-ubyte"].reshape(12, 784)
    labels = arrays["train-labels-idx1-ubyte"]
    np.testing.assert_array_equal(mnist.train.x, images[:8] / np.float32(255))
    np.testing.assert_array_equal(mnist.validation.x, images[8:] / np.float32(255))
    np.testing.assert_array_equal(mnist.train.y, labels[:8])
    np.testing.assert_array_equal(mnist.validation.y, labels[8:])
    np.testing.assert_array_equal(mnist.test.y, arrays["t10k-labels-idx1-ubyte"])
    assert mnist.test.x.shape == (5, 784) and mnist.test.x.dtype == np.float32
    assert mnist.train.y.dtype == np.int64 and len(mnist.train) == 8
    assert mnist.source == str(tmp_path / "d")
    with pytest.raises(ValueError, match="read-only"):
        mnist.train.x[0, 0] = 1.0


def test_n_validation_zero_and_out_of_range(tmp_path):
    write_mnist(tmp_path)
    mnist = data.load_mnist(tmp_path, download=False, n_validation=0, progress=False)
    assert mnist.train.x.shape == (12, 784)
    assert mnist.validation.x.shape == (0, 784) and mnist.validation.y.shape == (0,)
    for bad in (12, -1):
        with pytest.raises(ValueError, match=r"n_validation must be in \[0, 12\)"):
            data.load_mnist(tmp_path, download=False, n_validation=bad)
    with pytest.raises(TypeError, match="n_validation must be an int"):
        data.load_mnist(tmp_path, download=False, n_validation=2.5)


def test_lookup_order_argument_then_env_then_cache(tmp_path, monkeypatch):
    write_mnist(tmp_path / "arg" / "mnist", synthetic_mnist(seed=1))  # in mnist/ subfolder
    write_mnist(tmp_path / "env", synthetic_mnist(seed=2), gz=False)  # raw files, in root
    write_mnist(tmp_path / "cache" / "mnist", synthetic_mnist(seed=3))
    assert data.find_data_dir() == tmp_path / "cache" / "mnist"
    monkeypatch.setenv("FF_NUMPY_DATA", str(tmp_path / "env"))
    assert data.find_data_dir() == tmp_path / "env"
    assert data.find_data_dir(tmp_path / "arg") == tmp_path / "arg" / "mnist"
    assert data.find_data_dir(tmp_path / "nowhere") == tmp_path / "env"
    mnist = data.load_mnist(download=False, n_validation=2, progress=False)
    expected = synthetic_mnist(seed=2)["t10k-labels-idx1-ubyte"]
    assert mnist.source == str(tmp_path / "env")
    np.testing.assert_array_equal(mnist.test.y, expected)


def test_default_cache_dir(tmp_path, monkeypatch):
    assert data.default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("FF_NUMPY_CACHE")
    checkout = pathlib.Path(data.__file__).resolve().parent.parent
    if (checkout / "setup.cfg").is_file():
        assert data.default_cache_dir() == checkout / "data"
    else:
        assert data.default_cache_dir().parts[-1] == "ff_numpy"
    assert data.default_cache_dir().is_absolute()


def test_read_idx_caches_read_only_and_sees_changes(tmp_path):
    path = write(tmp_path / "x-idx1-ubyte", idx_bytes(np.arange(5)))
    first = data.read_idx(path)
    assert data.read_idx(path) is first and not first.flags.writeable
    write(path, idx_bytes(np.arange(7)))  # new size: a new cache key
    np.testing.assert_array_equal(data.read_idx(path), np.arange(7))


def test_split_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="Split expects"):
        data.Split(np.zeros((3, 784), np.float32), np.zeros(4, np.int64))


# ---------------------------------------------------------- bad files, read_idx

IMAGES = np.zeros((2, 28, 28), np.uint8)
GOOD = idx_bytes(IMAGES)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (idx_bytes(IMAGES, magic=0x00000801), r"wrong magic number 0x00000801.*0x00000803"),
        (idx_bytes(IMAGES, magic=0x12340803), r"wrong magic number 0x12340803.*not an IDX"),
        (idx_bytes(IMAGES, magic=0x00000D03), r"wrong data type byte 0x0D.*unsigned byte"),
        (GOOD[:-1], r"truncated: .*2x28x28 = 1568 bytes.*only 1567"),
        (GOOD[:10], r"truncated: 10 bytes, shorter than the 16-byte header"),
        (GOOD[:3], r"truncated: 3 bytes"),
        (GOOD + b"\0\0\0", r"3 extra trailing bytes"),
    ],
    ids=["magic", "not-idx", "dtype", "truncated", "short-header", "tiny", "trailing"],
)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_rejects_bad_structure(tmp_path, raw, problem, gz):
    path = write(tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else "")), raw)
    with names_file_and(path, problem):
        data.read_idx(path)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    packed = gzip.compress(GOOD, mtime=0)
    flipped = bytearray(packed)
    flipped[len(packed) // 2] ^= 0xFF
    cases = {"flipped": bytes(flipped), "cut": packed[:-12], "not-gzip": GOOD}
    for label, payload in cases.items():
        path = tmp_path / f"{label}-idx3-ubyte.gz"
        path.write_bytes(payload)
        with names_file_and(path, "corrupt gzip stream"):
            data.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with names_file_and(tmp_path / "absent-idx1-ubyte", "no such file"):
        data.read_idx(tmp_path / "absent-idx1-ubyte")


def test_local_checksum_mismatch(tmp_path, monkeypatch):
    arrays = write_mnist(tmp_path)
    name = "train-labels-idx1-ubyte"
    # The synthetic file now has the "official" size, but not the official bytes.
    monkeypatch.setitem(data.SIZES, name, 8 + len(arrays[name]))
    path = tmp_path / f"{name}.gz"
    with names_file_and(path, "SHA-256 mismatch.*expected " + data.SHA256[name]):
        data.read_idx(path)
    with names_file_and(path, "SHA-256 mismatch"):
        data.load_mnist(tmp_path, download=False, n_validation=2)


# --------------------------------------------------------- bad files, load_mnist


def with_file(name, array):
    return {**synthetic_mnist(), name: np.asarray(array, np.uint8)}


@pytest.mark.parametrize(
    ("arrays", "bad_file", "problem"),
    [
        (synthetic_mnist(rows=27), "train-images-idx3-ubyte", "wrong dimensions: .*27x28"),
        (
            with_file("train-labels-idx1-ubyte", [1, 2, 3, 12] + [0] * 8),
            "train-labels-idx1-ubyte",
            r"labels outside 0\.\.9, the first 12 at index 3",
        ),
        (
            with_file("t10k-labels-idx1-ubyte", [0, 1, 2, 3]),
            "t10k-labels-idx1-ubyte",
            "count mismatch: 4 labels but .*t10k-images-idx3-ubyte.gz holds 5 images",
        ),
    ],
    ids=["27x28", "label-range", "count"],
)
def test_load_mnist_rejects_inconsistent_files(tmp_path, arrays, bad_file, problem):
    write_mnist(tmp_path, arrays)
    with names_file_and(tmp_path / f"{bad_file}.gz", problem):
        data.load_mnist(tmp_path, download=False, n_validation=2)


def test_missing_files_with_download_disabled(tmp_path):
    write_mnist(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="not found and download=False") as info:
        data.load_mnist(tmp_path / "partial", download=False)
    message = str(info.value)
    for folder in ("partial", "partial/mnist", "cache", "cache/mnist"):
        assert f"{tmp_path / folder} (" in message
    assert "missing t10k-labels-idx1-ubyte[.gz]" in message
    assert "FF_NUMPY_DATA is not set" in message
    assert "export FF_NUMPY_DATA=" in message
    assert listing(tmp_path / "cache") == []


# ---------------------------------------------------------------------- download


def test_download_fails_without_network(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(data, "_urlopen", offline)
    cache = tmp_path / "cache" / "mnist"
    with names_file_and(cache / "train-images-idx3-ubyte.gz", "failed from every mirror") as info:
        data.load_mnist(progress=False)
    message = str(info.value)
    assert all(mirror in message for mirror in data.MIRRORS)
    assert "Name or service not known" in message and "FF_NUMPY_DATA" in message
    assert listing(tmp_path / "cache") == []


def test_download_success_writes_cache_atomically(tmp_path, monkeypatch):
    arrays = synthetic_mnist(seed=5)
    opener = serve(served_mnist(monkeypatch, arrays))
    monkeypatch.setattr(data, "_urlopen", opener)
    mnist = data.load_mnist(n_validation=3, progress=True)
    cache = tmp_path / "cache" / "mnist"
    assert mnist.source == str(cache)
    assert listing(cache) == sorted(f"{name}.gz" for name in data.MNIST_FILES)
    assert [url.rsplit("/", 1)[0] + "/" for url in opener.urls] == [data.MIRRORS[0]] * 4
    np.testing.assert_array_equal(mnist.test.y, arrays["t10k-labels-idx1-ubyte"])
    # A second load finds the cache and does not download again.
    data.clear_cache()
    assert data.load_mnist(n_validation=3, progress=False).source == str(cache)
    assert len(opener.urls) == 4


def test_download_falls_back_to_next_mirror_and_fetches_only_missing(tmp_path, monkeypatch):
    arrays = synthetic_mnist(seed=6)
    opener = serve(served_mnist(monkeypatch, arrays))

    def first_mirror_down(url, timeout):
        if url.startswith(data.MIRRORS[0]):
            raise urllib.error.URLError("timed out")
        return opener(url, timeout)

    monkeypatch.setattr(data, "_urlopen", first_mirror_down)
    cache = tmp_path / "cache" / "mnist"
    write(cache / "train-images-idx3-ubyte", idx_bytes(arrays["train-images-idx3-ubyte"]))
    data.load_mnist(n_validation=3, progress=False)
    assert len(opener.urls) == 3 and all(u.startswith(data.MIRRORS[1]) for u in opener.urls)
    assert "train-images-idx3-ubyte" in listing(cache) and len(listing(cache)) == 4


def test_download_checksum_mismatch_leaves_no_file(tmp_path, monkeypatch):
    files = served_mnist(monkeypatch, synthetic_mnist(seed=7))
    monkeypatch.setitem(data.SHA256, "train-labels-idx1-ubyte", "0" * 64)
    monkeypatch.setattr(data, "_urlopen", serve(files))
    cache = tmp_path / "cache" / "mnist"
    with names_file_and(cache / "train-labels-idx1-ubyte.gz", "SHA-256 mismatch") as info:
        data.load_mnist(progress=False)
    assert str(info.value).count("SHA-256 mismatch") == len(data.MIRRORS)
    assert listing(cache) == ["train-images-idx3-ubyte.gz"]  # downloaded before the bad one


@pytest.mark.parametrize("failure", ["reset", "short", "interrupt", "corrupt"])
def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch, failure):
    payload = gzip.compress(GOOD, mtime=0)

    class Broken(FakeResponse):
        def read(self, size=-1):
            if self.tell() > 0:
                if failure == "reset":
                    raise ConnectionResetError("connection reset by peer")
                if failure == "interrupt":
                    raise KeyboardInterrupt
            return super().read(min(size, 16))

    def broken_urlopen(url, timeout):
        if failure == "short":
            return FakeResponse(payload, content_length=len(payload) + 100)
        if failure == "corrupt":
            return FakeResponse(payload[:-12])
        return Broken(payload)

    monkeypatch.setattr(data, "_urlopen", broken_urlopen)
    problem = {
        "reset": "connection reset",
        "short": "download incomplete",
        "corrupt": "corrupt gzip stream",
    }
    cache = tmp_path / "cache" / "mnist"
    if failure == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            data.load_mnist(progress=False)
    else:
        with names_file_and(cache / "train-images-idx3-ubyte.gz", problem[failure]):
            data.load_mnist(progress=False)
    assert listing(tmp_path / "cache") == []
