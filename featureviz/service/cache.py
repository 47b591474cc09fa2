"""A bounded on-disk cache of results, shared by workers: atomic writes, oldest-first eviction.

Best effort: a folder that cannot be read or written (a full disk, a shared volume gone) makes
misses and unsaved results, logged, never a failed request."""
import hashlib
import json
import logging
import os
import tempfile

logger = logging.getLogger(__name__)


def cache_key(**parts) -> str:
    """A key from JSON-able parts (weights checksum, device, every field of the request)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class ResultCache:
    def __init__(self, folder: str, max_bytes: int):
        self.folder = folder
        self.max_bytes = max_bytes
        os.makedirs(folder, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, key + ".bin")

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            logger.warning("result cache: %s could not be read (%s); computing instead", path, error)
            return None
        try:
            os.utime(path)  # recently used: evicted last
        except OSError:
            pass  # evicted meanwhile, or a read-only share: the bytes are good
        return data

    def put(self, key: str, data: bytes) -> bool:
        """Whether the result was saved."""
        if len(data) > self.max_bytes:
            return False
        tmp = None
        try:
            # Write aside, then rename: another worker reads the whole file or none of it.
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._path(key))
        except OSError as error:
            logger.warning("result cache: a result could not be saved in %s (%s)", self.folder, error)
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
            return False
        self._evict()
        return True

    def _evict(self) -> None:
        entries = []
        for entry in os.scandir(self.folder):
            if entry.name.endswith(".bin"):
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # evicted by another worker meanwhile
                    continue
                entries.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            total -= size
