"""The Neuron compiler cache on a file system. Nothing is compiled in the simulation, so it only holds
its directory; optimum-neuron wraps it (cache/hub_cache.py) for the duration of train()."""

from __future__ import annotations

from pathlib import Path


class CacheUrl:
    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def get_cache_url(cls, cache_dir: str | None = None) -> CacheUrl:
        return cls(cache_dir or "/var/tmp/neuron-compile-cache")


class CompileCache:
    cache_type = "base"

    def __init__(self, cache_url: CacheUrl) -> None:
        self.cache_url = cache_url
        self.cache_path = cache_url.url

    def get_cache_dir(self, model_hash: str, compile_flags_str: str) -> str:
        return str(Path(self.cache_path) / f"MODULE_{model_hash}")


class CompileCacheFs(CompileCache):
    cache_type = "fs"

    def __init__(self, cache_url: CacheUrl) -> None:
        super().__init__(cache_url)
        Path(self.cache_path).mkdir(parents=True, exist_ok=True)


class CompileCacheS3(CompileCache):
    cache_type = "s3"


def create_compile_cache(cache_url: CacheUrl) -> CompileCache:
    return CompileCacheS3(cache_url) if cache_url.url.startswith("s3://") else CompileCacheFs(cache_url)
