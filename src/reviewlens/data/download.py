"""Download the aclImdb archive into the cache, with a progress bar and a checksum check."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from reviewlens.errors import ReviewlensError

ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ACLIMDB_SIZE = 84_125_825
ACLIMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ACLIMDB_FILENAME = "aclImdb_v1.tar.gz"
_CHUNK = 1 << 20


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else ``$REVIEWLENS_CACHE``, else ``~/.cache/reviewlens``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("REVIEWLENS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reviewlens"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    destination: Path,
    url: str = ACLIMDB_URL,
    sha256: str = ACLIMDB_SHA256,
    size: int | None = ACLIMDB_SIZE,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``destination`` unless a verified copy is already there.

    The bytes go to ``destination.part`` and are hashed as they arrive; only a file whose size and
    SHA-256 match is renamed into place, so an interrupted or corrupt download never looks whole.
    ``progress(done, total)`` is called as bytes arrive.
    """
    if destination.exists():
        if sha256_of(destination) == sha256:
            return destination
        raise ReviewlensError(
            f"{destination} exists but its checksum is not {sha256}; delete it and run the download again"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    digest, done = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or size
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise ReviewlensError(
            f"cannot download {url} ({reason}); check the network, or fetch the file by other means "
            f"and pass it with --data PATH"
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if (size is not None and done != size) or digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise ReviewlensError(
            f"the download of {url} is corrupt ({done} bytes, sha256 {digest.hexdigest()}, expected "
            f"{size} bytes and {sha256}); nothing was kept, run the download again"
        )
    os.replace(partial, destination)
    return destination
