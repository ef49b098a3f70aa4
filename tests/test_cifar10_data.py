"""Tests for the CIFAR-10 loader of ff_numpy.data: synthetic binary files and the real copy.

Every synthetic test writes a few records per file to ``tmp_path`` (through the private
``_load_cifar10``, whose ``records_per_file`` the public loader fixes at 10,000) and
never uses the network: the url-opening function of ``ff_numpy.data`` is replaced by a
fake. The real-data tests need the binary version in ``$FF_NUMPY_DATA`` or in the
download cache (CI rebuilds it there); they are skipped only when it is found nowhere.
"""

import gzip
import hashlib
import io
import tarfile
import time
import urllib.error

import numpy as np
import pytest

# The autouse fixture ``hermetic`` (no FF_NUMPY_DATA, an empty cache under tmp_path, no
# network, no parse cache) and the download fakes are the MNIST tests' own.
from test_data import hermetic, listing, names_file_and, serve  # noqa: F401

from ff_numpy import data

REAL = data.find_cifar10()  # looked up once, before any test changes the environment
N = 3  # records per synthetic file
ARCHIVE_MEMBER = "cifar-10-batches-bin/{}"
BUILD = "mkdir -p data/cifar10 && python ../shared/data/cifar10/build_binary.py data/cifar10"


# ----------------------------------------------------------------------- helpers


def synthetic(seed=0, n=N):
    """{file name: (labels (n,) uint8, planes (n, 3, 32, 32) uint8)}: R, G, B planes."""
    rng = np.random.default_rng(seed)
    return {
        name: (
            rng.integers(0, 10, n, dtype=np.uint8),
            rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
        )
        for name in data.CIFAR10_FILES
    }


def record_bytes(labels, planes):
    """The binary version's bytes: per record, the label byte, then 3072 plane bytes."""
    labels = np.asarray(labels, np.uint8)
    rows = np.asarray(planes, np.uint8).reshape(len(labels), 3 * 32 * 32)
    return np.concatenate([labels[:, None], rows], axis=1).tobytes()


def blobs(files=None):
    """{file name: bytes} of ``files`` (default: ``synthetic()``)."""
    files = synthetic() if files is None else files
    return {name: record_bytes(*arrays) for name, arrays in files.items()}


def write_folder(folder, contents=None):
    """Write the record files into ``folder``; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in (blobs() if contents is None else contents).items():
        (folder / name).write_bytes(raw)
    return folder


def archive_bytes(contents=None, *, gz=True, member=ARCHIVE_MEMBER):
    """A (gzip-compressed) tar holding the record files as ``member.format(name)``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, raw in (blobs() if contents is None else contents).items():
            info = tarfile.TarInfo(member.format(name))
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def write_archive(path, contents=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(archive_bytes(contents, **kwargs))
    return path


def load(data_dir=None, *, download=False, n_validation=2, progress=False, records=N):
    return data._load_cifar10(
        data_dir,
        download=download,
        n_validation=n_validation,
        progress=progress,
        records_per_file=records,
    )


def expected_arrays(files):
    """(train x, train y, test x, test y) as the loader must return them, pixel by pixel."""
    xs, ys = [], []
    for name in data.CIFAR10_FILES:
        labels, planes = files[name]
        x = np.empty((len(labels), 3072), np.float32)
        for r in range(32):
            for q in range(32):
                for c in range(3):
                    x[:, (r * 32 + q) * 3 + c] = planes[:, c, r, q] / np.float32(255)
        xs.append(x)
        ys.append(labels.astype(np.int64))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


# ------------------------------------------------------------------- pixel order


def test_planes_become_hwc_channel_fastest(tmp_path):
    labels = np.array([7], np.uint8)
    planes = np.zeros((1, 3, 32, 32), np.uint8)
    planes[0, 0] = 10  # red plane
    planes[0, 1] = 20  # green plane
    planes[0, 2] = 30  # blue plane
    planes[0, 0, 1, 2] = 200  # red at row 1, column 2
    planes[0, 1, 0, 31] = 100  # green at row 0, column 31
    planes[0, 2, 31, 0] = 50  # blue at row 31, column 0
    files = {name: (labels, planes) for name in data.CIFAR10_FILES}
    write_folder(tmp_path / "cifar-10-batches-bin", blobs(files))
    cifar = load(tmp_path, n_validation=0, records=1)
    x = cifar.test.x[0]
    assert x.shape == (3072,) and cifar.test.y.tolist() == [7]
    np.testing.assert_array_equal(x[:6] * 255, [10, 20, 30, 10, 20, 30])
    assert x[(1 * 32 + 2) * 3 + 0] * 255 == pytest.approx(200)
    assert x[(0 * 32 + 31) * 3 + 1] * 255 == pytest.approx(100)
    assert x[(31 * 32 + 0) * 3 + 2] * 255 == pytest.approx(50)
    image = x.reshape(32, 32, 3) * 255  # HWC: the image as matplotlib shows it
    assert image[1, 2].round().tolist() == [200, 20, 30]
    assert image[0, 31].round().tolist() == [10, 100, 30]
    assert image[31, 0].round().tolist() == [10, 20, 50]
    assert np.count_nonzero(image.round() != [10, 20, 30]) == 3


def test_every_pixel_and_label_in_order(tmp_path):
    files = synthetic(seed=1)
    write_folder(tmp_path / "cifar10" / "cifar-10-batches-bin", blobs(files))
    cifar = load(tmp_path, n_validation=0)
    train_x, train_y, test_x, test_y = expected_arrays(files)
    np.testing.assert_array_equal(cifar.train.x, train_x)
    np.testing.assert_array_equal(cifar.train.y, train_y)
    np.testing.assert_array_equal(cifar.test.x, test_x)
    np.testing.assert_array_equal(cifar.test.y, test_y)


# ------------------------------------------------------------------------ splits


def test_split_sizes_types_and_read_only(tmp_path):
    files = synthetic(seed=2)
    write_folder(tmp_path / "cifar-10-batches-bin", blobs(files))
    cifar = load(tmp_path, n_validation=4)
    train_x, train_y, _, _ = expected_arrays(files)
    assert isinstance(cifar, data.CIFAR10) and isinstance(cifar, data.Dataset)
    assert (len(cifar.train), len(cifar.validation), len(cifar.test)) == (11, 4, 3)
    np.testing.assert_array_equal(cifar.train.y, train_y[:11])
    np.testing.assert_array_equal(cifar.validation.x, train_x[11:])
    np.testing.assert_array_equal(cifar.validation.y, train_y[11:])
    for split in (cifar.train, cifar.validation, cifar.test):
        assert split.x.dtype == np.float32 and split.y.dtype == np.int64
        assert split.x.shape[1] == 3072 and 0 <= split.x.min() <= split.x.max() <= 1
        assert not split.x.flags.writeable and not split.y.flags.writeable
    assert cifar.source == str(tmp_path / "cifar-10-batches-bin")


def test_n_validation_zero_and_out_of_range(tmp_path):
    write_folder(tmp_path / "cifar-10-batches-bin")
    cifar = load(tmp_path, n_validation=0)
    assert cifar.train.x.shape == (15, 3072)
    assert cifar.validation.x.shape == (0, 3072) and cifar.validation.y.shape == (0,)
    for bad in (15, -1):
        with pytest.raises(ValueError, match=r"n_validation must be in \[0, 15\)"):
            load(tmp_path, n_validation=bad)
    with pytest.raises(TypeError, match="n_validation must be an int"):
        data.load_cifar10(tmp_path, download=False, n_validation=2.5)


# ---------------------------------------------------------------------- look-up


@pytest.mark.parametrize(
    ("gz", "member"),
    [(True, ARCHIVE_MEMBER), (False, ARCHIVE_MEMBER), (True, "./" + ARCHIVE_MEMBER)],
    ids=["tar.gz", "plain-tar", "dot-slash"],
)
def test_archive_read_without_extracting_equals_folder(tmp_path, gz, member):
    files = synthetic(seed=3)
    archive = tmp_path / "a" / "cifar-10-binary.tar.gz"
    write_archive(archive, blobs(files), gz=gz, member=member)
    write_folder(tmp_path / "f" / "cifar-10-batches-bin", blobs(files))
    from_archive = load(tmp_path / "a", n_validation=0)
    from_folder = load(tmp_path / "f", n_validation=0)
    assert from_archive.source == str(archive)
    for part in ("train", "test"):
        a, f = getattr(from_archive, part), getattr(from_folder, part)
        np.testing.assert_array_equal(a.x, f.x)
        np.testing.assert_array_equal(a.y, f.y)
    assert listing(tmp_path / "a") == ["cifar-10-binary.tar.gz"]  # nothing extracted
    assert listing(tmp_path / "cache") == []


def test_lookup_order_within_a_root_and_across_roots(tmp_path, monkeypatch):
    root = tmp_path / "root"
    places = [
        root / "cifar10" / "cifar-10-batches-bin",
        root / "cifar-10-batches-bin",
        root / "cifar10" / "cifar-10-binary.tar.gz",
        root / "cifar-10-binary.tar.gz",
    ]
    for seed, place in reversed(list(enumerate(places))):
        contents = blobs(synthetic(seed=10 + seed))
        if place.name.endswith(".tar.gz"):
            write_archive(place, contents)
        else:
            write_folder(place, contents)
    for seed, place in enumerate(places):
        assert data.find_cifar10(root) == place
        cifar = load(root)
        assert cifar.source == str(place)
        expected = synthetic(seed=10 + seed)["test_batch.bin"][0]
        np.testing.assert_array_equal(cifar.test.y, expected)
        data.clear_cache()
        if place.is_dir():
            (place / "test_batch.bin").unlink()  # incomplete: the next place wins
        else:
            place.unlink()
    assert data.find_cifar10(root) is None

    write_archive(tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz")
    write_folder(tmp_path / "env" / "cifar-10-batches-bin")
    write_folder(tmp_path / "arg" / "cifar-10-batches-bin")
    assert data.find_cifar10() == tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz"
    monkeypatch.setenv("FF_NUMPY_DATA", str(tmp_path / "env"))
    assert data.find_cifar10() == tmp_path / "env" / "cifar-10-batches-bin"
    assert data.find_cifar10(tmp_path / "arg") == tmp_path / "arg" / "cifar-10-batches-bin"
    assert data.find_cifar10(tmp_path / "nowhere") == tmp_path / "env" / "cifar-10-batches-bin"


def test_binary_in_cache_when_data_root_holds_only_jpegs(tmp_path, monkeypatch):
    """As in CI: $FF_NUMPY_DATA/cifar10 holds the JPEG copy, the cache the rebuilt binary."""
    shared = tmp_path / "shared" / "cifar10"
    shared.mkdir(parents=True)
    (shared / "cifar10-jpeg.tar.gz").write_bytes(b"jpeg files")
    (shared / "build_binary.py").write_text("")
    monkeypatch.setenv("FF_NUMPY_DATA", str(tmp_path / "shared"))
    archive = write_archive(tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz")
    assert load().source == str(archive)


# ---------------------------------------------------------------------- bad files


def with_file(name, raw):
    return {**blobs(), name: raw}


GOOD = blobs()["data_batch_2.bin"]
BAD_LABELS = record_bytes([1, 2, 10], synthetic()["test_batch.bin"][1])


@pytest.mark.parametrize(
    ("name", "raw", "problem"),
    [
        ("data_batch_2.bin", GOOD[:-1], r"9218 bytes, not a whole number of 3073-byte records"),
        ("data_batch_2.bin", GOOD + GOOD[:3073], "4 records, expected 3"),
        ("data_batch_5.bin", b"", "0 records, expected 3"),
        ("test_batch.bin", BAD_LABELS, r"1 labels outside 0\.\.9, the first 10 at index 2"),
    ],
    ids=["size", "records", "empty", "label"],
)
@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_bad_record_file_names_it(tmp_path, name, raw, problem, kind):
    contents = with_file(name, raw)
    if kind == "folder":
        bad = write_folder(tmp_path / "cifar-10-batches-bin", contents) / name
    else:
        bad = write_archive(tmp_path / "cifar-10-binary.tar.gz", contents)
        problem = rf"\(member cifar-10-batches-bin/{name}\): {problem}"
    with names_file_and(bad, problem) as info:
        load(tmp_path)
    assert "\n" not in str(info.value)


def test_public_loader_insists_on_10000_records(tmp_path):
    folder = write_folder(tmp_path / "cifar-10-batches-bin")
    with names_file_and(folder / "data_batch_1.bin", "3 records, expected 10000"):
        data.load_cifar10(tmp_path, download=False)


def corrupt_archives():
    packed = archive_bytes()
    middle = bytearray(packed)
    middle[len(packed) // 2] ^= 0xFF
    crc = bytearray(packed)
    crc[-8] ^= 0xFF  # the gzip trailer's CRC-32: only reading to the end notices
    return {
        "flipped": bytes(middle),
        "crc": bytes(crc),
        "cut": packed[: len(packed) // 2],
        "not-gzip-not-tar": b"\x00\x01not an archive" * 100,
        "gzip-not-tar": gzip.compress(b"not a tar archive" * 100),
        "empty": b"",
    }


@pytest.mark.parametrize("case", list(corrupt_archives()))
def test_corrupt_archive_names_it(tmp_path, case):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(corrupt_archives()[case])
    with names_file_and(archive, "corrupt tar archive") as info:
        load(tmp_path)
    assert "\n" not in str(info.value)


def test_archive_missing_member(tmp_path):
    contents = blobs()
    del contents["test_batch.bin"]
    archive = write_archive(tmp_path / "cifar10" / "cifar-10-binary.tar.gz", contents)
    with names_file_and(archive, "no member cifar-10-batches-bin/test_batch.bin"):
        load(tmp_path)


def test_missing_files_list_places_and_how_to_build(tmp_path):
    partial = blobs()
    del partial["test_batch.bin"]
    write_folder(tmp_path / "root" / "cifar-10-batches-bin", partial)
    with pytest.raises(data.DataError, match="not found and download=False") as info:
        load(tmp_path / "root")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    for place in (
        "root/cifar10/cifar-10-batches-bin (data_dir argument): no such folder",
        "root/cifar-10-batches-bin (data_dir argument): missing test_batch.bin",
        "root/cifar10/cifar-10-binary.tar.gz (data_dir argument): no such file",
        "root/cifar-10-binary.tar.gz (data_dir argument): no such file",
        "cache/cifar10/cifar-10-batches-bin (download cache)",
        "cache/cifar-10-binary.tar.gz (download cache)",
    ):
        assert f"{tmp_path / place}" in message, place
    assert "FF_NUMPY_DATA is not set" in message
    assert "python ../shared/data/cifar10/build_binary.py" in message
    assert listing(tmp_path / "cache") == []


def test_missing_files_hint_names_a_found_build_script(tmp_path, monkeypatch):
    script = tmp_path / "shared" / "cifar10" / "build_binary.py"
    script.parent.mkdir(parents=True)
    script.write_text("")
    monkeypatch.setenv("FF_NUMPY_DATA", str(tmp_path / "shared"))
    cache = tmp_path / "cache" / "cifar10"
    with pytest.raises(data.DataError, match=f"python {script} {cache}"):
        data.load_cifar10(download=False)


# ---------------------------------------------------------------------- download


def test_download_checksum_mismatch_leaves_no_file(tmp_path, monkeypatch):
    opener = serve({"cifar-10-binary.tar.gz": archive_bytes()})
    monkeypatch.setattr(data, "_urlopen", opener)
    final = tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz"
    with names_file_and(final, "MD5 mismatch") as info:
        load(download=True)
    assert f"expected {data.CIFAR10_MD5}" in str(info.value)
    assert opener.urls == [data.CIFAR10_URL]
    assert listing(tmp_path / "cache") == []


def test_download_verified_then_loaded_from_cache(tmp_path, monkeypatch):
    payload = archive_bytes(blobs(synthetic(seed=4)))
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(payload).hexdigest())
    opener = serve({"cifar-10-binary.tar.gz": payload})
    monkeypatch.setattr(data, "_urlopen", opener)
    cifar = load(download=True, progress=True)
    final = tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz"
    assert cifar.source == str(final) and final.read_bytes() == payload
    np.testing.assert_array_equal(cifar.test.y, synthetic(seed=4)["test_batch.bin"][0])
    data.clear_cache()
    assert load(download=True).source == str(final)  # found in the cache: no new download
    assert opener.urls == [data.CIFAR10_URL]


def test_download_fails_without_network(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(data, "_urlopen", offline)
    final = tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz"
    with names_file_and(final, "download failed from its source") as info:
        load(download=True)
    message = str(info.value)
    assert data.CIFAR10_URL in message and "Name or service not known" in message
    assert "build_binary.py" in message
    assert listing(tmp_path / "cache") == []


# --------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real():
    """(load with n_validation=0, its (CPU, wall) seconds, the default split), real copy."""
    if REAL is None:
        pytest.skip(
            "CIFAR-10 binary version not found in $FF_NUMPY_DATA or the download cache: "
            f"build it from the project root with `{BUILD}`"
        )
    data.clear_cache()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    full = data.load_cifar10(REAL.parent, download=False, n_validation=0, progress=False)
    seconds = time.process_time() - cpu0, time.perf_counter() - wall0
    return full, seconds, data.load_cifar10(REAL.parent, download=False, progress=False)


def test_real_sizes_and_class_counts(real):
    full, _, default = real
    assert full.train.x.shape == (50_000, 3072) and full.test.x.shape == (10_000, 3072)
    assert np.bincount(full.train.y, minlength=10).tolist() == [5000] * 10
    assert np.bincount(full.test.y, minlength=10).tolist() == [1000] * 10
    sizes = {"train": 45_000, "validation": 5_000, "test": 10_000}
    for part, n in sizes.items():
        split = getattr(default, part)
        assert split.x.shape == (n, 3072) and split.x.dtype == np.float32, part
        assert split.y.shape == (n,) and split.y.dtype == np.int64, part
        assert split.x.min() == 0.0 and split.x.max() == 1.0, part
    np.testing.assert_array_equal(default.validation.y, full.train.y[45_000:])


def test_real_channel_means(real):
    full, _, _ = real
    # per position (3072,), then per channel: HWC puts the channel last
    means = full.train.x.mean(axis=0, dtype=np.float64).reshape(1024, 3).mean(axis=0)
    np.testing.assert_allclose(means, [0.491, 0.482, 0.447], atol=0.005)


def test_real_loads_in_a_few_seconds(real):
    # CPU time: wall time depends on whatever else shares the cores (measured on two
    # busy cores: about 2.5 s CPU, 2.5-6 s wall).
    _, (cpu, wall), _ = real
    assert cpu < 8, f"loading CIFAR-10 took {cpu:.1f} s of CPU ({wall:.1f} s wall)"
