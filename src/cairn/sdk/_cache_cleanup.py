"""Trimming the download cache (``cairn cache cleanup``): the cache of the configured
``CAIRN_CACHE_DIR``, trimmed by ``cairn.service.DownloadCache`` (which owns its layout)."""

from __future__ import annotations

from cairn.sdk._settings import Settings
from cairn.service import CacheCleanupReport, DownloadCache

__all__ = ["CacheCleanupReport", "cleanup_cache"]


def cleanup_cache(
    target_size: int, *, remove_temp: bool = False, cache_dir: str | None = None
) -> CacheCleanupReport:
    """Remove cached blobs, least recently used first, until the cache holds at most
    ``target_size`` bytes. With ``remove_temp`` also remove partial files of downloads (do not
    use it while downloads are running)."""
    root = cache_dir or Settings.from_env().cache_dir
    return DownloadCache(root).cleanup(target_size, remove_temp=remove_temp)
