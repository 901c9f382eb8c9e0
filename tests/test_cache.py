"""Content-addressed stem cache: keys, hashing, atomic entries, eviction, concurrency."""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time

import numpy as np
import pytest

from engine.errors import NonFiniteAudioError, SettingsError
from resonate_stream.cache import (AudioHasher, CacheError, CacheMissError, StemCache, cache_key,
                                   default_cache_dir, hash_file)

STEMS = ("vocals", "drums", "bass", "other")
DAY = 86400.0


def make_blocks(sizes, seed=0, value=None):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        if value is None:
            out.append({s: rng.standard_normal((2, n)).astype(np.float32) for s in STEMS})
        else:
            out.append({s: np.full((2, n), value, np.float32) for s in STEMS})
    return out


def joined(blocks):
    return {s: np.concatenate([b[s] for b in blocks], axis=1) for s in blocks[0]}


def store(cache, key, blocks, **kw):
    with cache.writer(key, **kw) as w:
        for b in blocks:
            w.write(b)
    return w


# -- keys and hashes -------------------------------------------------------------------

def test_cache_key_is_stable_and_canonical():
    k = cache_key("a1b2", "separate", {"model": "htdemucs", "segment": 7.8, "shifts": 1})
    assert len(k) == 64 and int(k, 16) >= 0
    # fixed value: the key must not change between runs, machines or Python versions
    assert k == cache_key("a1b2", "separate", {"shifts": 1.0, "segment": 7.8, "model": "htdemucs"})
    assert k == cache_key("a1b2", "separate", {"model": "htdemucs", "segment": np.float64(7.8),
                                               "shifts": np.int64(1)})
    assert k != cache_key("a1b2", "separate", {"model": "htdemucs", "segment": 7.9, "shifts": 1})
    assert k != cache_key("a1b2", "enhance", {"model": "htdemucs", "segment": 7.8, "shifts": 1})
    assert k != cache_key("a1b3", "separate", {"model": "htdemucs", "segment": 7.8, "shifts": 1})
    assert cache_key("x", "op", {"t": (1, 2)}) == cache_key("x", "op", {"t": [1, 2]})
    assert cache_key("x", "op") == cache_key("x", "op", {})
    with pytest.raises(SettingsError):
        cache_key("x", "op", {"bad": float("nan")})
    with pytest.raises(SettingsError):
        cache_key("x", "op", {"obj": object()})


def test_audio_hasher_is_block_size_invariant(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 10007)).astype(np.float32)
    whole = AudioHasher().update(x).hexdigest()
    h = AudioHasher()
    pos = 0
    for n in [1, 2, 999, 5000, 3, 10000]:
        h.update(x[:, pos:pos + n])
        pos += n
    assert h.hexdigest() == whole and h.samples == 10007
    y = x.copy()
    y[1, 5000] += 1e-3
    assert AudioHasher().update(y).hexdigest() != whole
    assert AudioHasher().update(x[:1]).hexdigest() != AudioHasher().update(np.repeat(x[:1], 2, 0)).hexdigest()
    with pytest.raises(SettingsError):
        AudioHasher().update(x).update(x[:1])
    with pytest.raises(SettingsError):
        AudioHasher().update(b"abc").update(x)
    p = tmp_path / "f.bin"
    p.write_bytes(b"hello" * 100000)
    import hashlib
    assert hash_file(p, chunk_bytes=4096) == hashlib.sha256(b"hello" * 100000).hexdigest()


def test_default_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RESONATE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert StemCache().root == tmp_path / "c" and (tmp_path / "c" / "entries").is_dir()
    monkeypatch.delenv("RESONATE_CACHE_DIR")
    assert default_cache_dir() == __import__("pathlib").Path.home() / ".cache" / "resonate"


# -- entries ---------------------------------------------------------------------------

def test_miss_then_hit_and_round_trip(tmp_path):
    cache = StemCache(tmp_path)
    key = cache_key("audio", "separate", {"model": "dsp"})
    assert not cache.has(key)
    with pytest.raises(CacheMissError):
        cache.reader(key)
    with pytest.raises(KeyError):  # also a KeyError, for dict-like callers
        cache.info(key)
    blocks = make_blocks([1000, 1, 4097, 333])
    w = store(cache, key, blocks, operation="separate", params={"model": "dsp"})
    assert w.published and w.frames == 5431
    assert cache.has(key)
    got = list(cache.reader(key, block_frames=2000))
    assert [b["vocals"].shape[1] for b in got] == [2000, 2000, 1431]
    assert all(b[s].dtype == np.float32 and b[s].shape[0] == 2 for b in got for s in STEMS)
    ref, back = joined(blocks), joined(got)
    for s in STEMS:
        np.testing.assert_array_equal(back[s], ref[s])  # float32 WAV: bit-exact
    (entry,) = cache.ls()
    assert entry.key == key and entry.operation == "separate" and entry.frames == 5431
    assert entry.params == {"model": "dsp"} and set(entry.stems) == set(STEMS)
    assert entry.size_bytes == cache.size_bytes() > 4 * 2 * 5431 * 4
    assert list((tmp_path / "tmp").iterdir()) == []


def test_failed_or_bad_writes_publish_nothing(tmp_path):
    cache = StemCache(tmp_path)
    key = cache_key("a", "op")
    with pytest.raises(RuntimeError):
        with cache.writer(key) as w:
            w.write(make_blocks([100])[0])
            raise RuntimeError("separator crashed")
    assert not cache.has(key)
    bad = make_blocks([10])[0]
    bad["bass"][0, 3] = np.inf
    with pytest.raises(NonFiniteAudioError):
        with cache.writer(key) as w:
            w.write(bad)
    with pytest.raises(CacheError):
        with cache.writer(key) as w:
            w.write({"vocals": np.zeros((2, 10), np.float32), "bass": np.zeros((2, 11), np.float32)})
    with pytest.raises(CacheError):
        with cache.writer(key) as w:
            w.write(make_blocks([10])[0])
            w.write({"vocals": np.zeros((2, 10), np.float32)})
    with pytest.raises(CacheError):
        cache.writer("../escape")
    assert not cache.has(key) and cache.ls() == []
    assert list((tmp_path / "tmp").iterdir()) == []


# -- cleanup ---------------------------------------------------------------------------

def test_clear_by_age(tmp_path):
    cache = StemCache(tmp_path)
    now = time.time()
    keys = [cache_key(f"a{i}", "op") for i in range(3)]
    for i, k in enumerate(keys):
        store(cache, k, make_blocks([100], seed=i))
    cache.touch(keys[0], now - 10 * DAY)
    cache.touch(keys[1], now - 3 * DAY)
    assert [e.key for e in cache.ls()] == [keys[2], keys[1], keys[0]]  # most recently used first
    assert cache.clear(older_than_days=7) == 1
    assert not cache.has(keys[0]) and cache.has(keys[1]) and cache.has(keys[2])
    assert cache.enforce_limits(max_age_days=2) == [keys[1]]
    assert cache.has(keys[2])
    # a stale in-progress folder of a crashed writer goes too
    stale = tmp_path / "tmp" / "deadbeef.123.abc"
    stale.mkdir()
    os.utime(stale, (now - 2 * DAY, now - 2 * DAY))
    assert cache.clear() == 1
    assert cache.ls() == [] and not stale.exists() and cache.size_bytes() == 0


def test_size_limit_evicts_least_recently_used(tmp_path):
    cache = StemCache(tmp_path)
    now = time.time()
    keys = [cache_key(f"b{i}", "op") for i in range(4)]
    for i, k in enumerate(keys):
        store(cache, k, make_blocks([2000], seed=i))
        cache.touch(k, now - (10 - i) * 3600)  # keys[0] oldest use ... keys[3] newest
    one = cache.info(keys[0]).size_bytes
    # reading keys[0] makes it the most recently used
    for _ in cache.reader(keys[0]):
        pass
    evicted = cache.enforce_limits(max_bytes=int(2.5 * one))
    assert evicted == [keys[1], keys[2]]
    assert cache.has(keys[0]) and cache.has(keys[3])
    assert cache.size_bytes() <= 2.5 * one
    assert cache.enforce_limits(max_bytes=0) == [keys[3], keys[0]]
    assert cache.size_bytes() == 0


# -- concurrency -------------------------------------------------------------------------

def _concurrent_writer(root: str, key: str, writer_id: int, start_at: float, out_q) -> None:
    cache = StemCache(root, fsync=False)
    while time.time() < start_at:
        time.sleep(0.001)
    with cache.writer(key, operation="separate") as w:
        for n in (3000, 1, 2500, 4000):
            w.write({s: np.full((2, n), writer_id, np.float32) for s in STEMS})
            time.sleep(0.01)
    out_q.put((writer_id, w.published))


def test_concurrent_writers_of_one_key_leave_one_intact_entry(tmp_path):
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    key = cache_key("same-audio", "separate")
    q = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_concurrent_writer, args=(str(tmp_path), key, i + 1, start_at, q))
             for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    results = [q.get(timeout=5) for _ in procs]
    winners = [wid for wid, published in results if published]
    assert len(winners) == 1
    cache = StemCache(tmp_path)
    back = joined(list(cache.reader(key, block_frames=1234)))
    for s in STEMS:
        assert back[s].shape == (2, 9501)
        assert np.all(back[s] == winners[0])  # every stem, every sample from the one winner
    assert len(cache.ls()) == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def test_reader_during_writing_sees_nothing_or_everything(tmp_path):
    cache = StemCache(tmp_path, fsync=False)
    key = cache_key("slow", "separate")
    blocks = make_blocks([1500] * 20, seed=3)
    ref = joined(blocks)

    def slow_writer():
        with cache.writer(key) as w:
            for b in blocks:
                w.write(b)
                time.sleep(0.005)

    t = threading.Thread(target=slow_writer)
    t.start()
    misses = hits = 0
    while True:
        done = not t.is_alive()
        try:
            reader = cache.reader(key, block_frames=7000)
        except CacheMissError:
            misses += 1
        else:
            back = joined(list(reader))
            for s in STEMS:
                np.testing.assert_array_equal(back[s], ref[s])
            hits += 1
        if done:
            break
    t.join()
    assert misses > 0 and hits > 0
