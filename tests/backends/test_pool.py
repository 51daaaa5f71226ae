"""The pool of big host buffers (tfgrad/backends/pool.py): a block is reused only once nothing
refers to it, blocks are aligned, the free lists keep to their cap, and empty_cache frees them."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import tfgrad as tg
from tfgrad.backends import pool

BIG = (1 << 18) + 3  # float64 elements: 2 MiB and a bit, above MIN_BYTES, not a round size


@pytest.fixture
def fresh_pool():
    pool.empty_cache()
    old = pool.limit()
    yield
    pool.set_limit(old)
    pool.empty_cache()


def test_a_block_is_reused_only_when_no_view_of_it_is_left(fresh_pool):
    a = pool.empty((BIG,), np.float64)
    a[:] = 1.0
    views = [a.reshape(-1)[::2], a.view(np.uint8), a[5:], np.asarray(a).T]
    del a
    gc.collect()
    b = pool.empty((BIG,), np.float64)  # a fresh block: the views still hold the first one
    assert not any(np.shares_memory(b, v) for v in views)
    b[:] = 2.0
    assert (views[0] == 1.0).all() and (views[2] == 1.0).all()
    address = views[1].ctypes.data
    del views
    before = pool.stats()["reused"]
    c = pool.empty((BIG,), np.float64)  # now the first block is free again
    assert pool.stats()["reused"] == before + 1
    assert c.ctypes.data == address
    assert not np.shares_memory(b, c)


def test_blocks_are_aligned_and_arrays_are_what_np_empty_gives(fresh_pool):
    for shape, dtype in [((BIG,), np.float64), ((513, 1025), np.float32), ((3, BIG), np.int32)]:
        a = pool.empty(shape, dtype)
        assert a.shape == shape and a.dtype == np.dtype(dtype)
        assert a.flags.c_contiguous and a.flags.writeable
        assert a.ctypes.data % pool.ALIGN == 0
    small = pool.empty((10,), np.float32)
    assert small.base is None  # below MIN_BYTES: a plain np.empty


def test_the_cap_and_empty_cache(fresh_pool):
    pool.set_limit(3 << 20)  # room for one 2 MiB-class block
    a, b = pool.empty((BIG,), np.float64), pool.empty((BIG,), np.float64)
    del a, b
    held = pool.stats()["held"]
    assert 0 < held <= 3 << 20 and pool.stats()["blocks"] == 1
    assert tg.empty_cache() == held
    assert pool.stats()["held"] == 0 and pool.stats()["blocks"] == 0
    pool.set_limit(0)  # off: nothing is kept
    pool.empty((BIG,), np.float64)  # dies at once
    assert pool.stats()["held"] == 0


def test_tensors_never_alias_a_reused_block(backend, fresh_pool):
    x = tg.tensor(np.linspace(-1.0, 1.0, BIG))
    kept = (x * 2.0).numpy()  # the result tensor dies; its NumPy view lives on
    expected = np.linspace(-1.0, 1.0, BIG) * 2.0
    for _ in range(4):  # more big results of the same size, reusing free blocks
        y = tg.exp(x) + x
        assert not np.shares_memory(y.numpy(), kept)
        del y
    np.testing.assert_array_equal(kept, expected)
    loss, g = tg.value_and_grad(lambda x: tg.sum(tg.tanh(x) * tg.exp(-x * x)))(x)
    g2 = tg.value_and_grad(lambda x: tg.sum(tg.tanh(x) * tg.exp(-x * x)))(x)[1]
    assert not np.shares_memory(g.numpy(), g2.numpy())
    np.testing.assert_array_equal(g.numpy(), g2.numpy())


def test_device_arrays_are_reused_only_when_no_buffer_shares_them(fresh_pool):
    from tfgrad.backends.taichi.backend import TaichiBackend

    b = TaichiBackend("cpu", buffers="ndarray")  # Taichi ndarrays, as on a GPU
    values = np.linspace(-1.0, 1.0, BIG)
    x = b.from_numpy(values)
    y = b.run("exp", x)
    flat = y.reshape((BIG,))
    kept = y.reshape((1, BIG))  # shares y's array (and its lease)
    array = y.array
    del y, flat
    z = b.run("neg", x)  # a new array: kept still holds the first
    assert z.array is not array
    np.testing.assert_allclose(b.to_numpy(kept).reshape(-1), np.exp(values), rtol=1e-14)
    del kept, z
    before = pool.stats()["reused"]
    w = b.run("neg", x)  # now a free array of that size is taken again
    assert pool.stats()["reused"] == before + 1
    np.testing.assert_array_equal(b.to_numpy(w), -values)
    del w
    assert tg.empty_cache() > 0 and pool.stats()["device_blocks"] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_big_transposes_and_concatenations_are_numpys_in_pooled_buffers(dtype, fresh_pool):
    # Above MIN_BYTES the reference backend tiles a matrix transpose and concatenates into a
    # pool block; shapes that are no multiple of the tile, and a mix of dtypes that promotes.
    from tfgrad.backends.numpy_backend import MOVEMENT, TRANSPOSE_TILE

    rng = np.random.default_rng(0)
    x = rng.standard_normal((TRANSPOSE_TILE * 3 + 5, 700)).astype(dtype)
    out = MOVEMENT["transpose"](x, (1, 0))
    assert out.flags.c_contiguous and out.dtype == dtype
    np.testing.assert_array_equal(out, x.T)
    y = rng.standard_normal((x.shape[0], 3)).astype(np.float32)
    joined = MOVEMENT["concatenate"](y, x, y, axis=1)
    np.testing.assert_array_equal(joined, np.concatenate([y, x, y], axis=1))
    assert joined.dtype == np.result_type(x, y) and joined.flags.c_contiguous
    assert pool.stats()["allocated"] >= 2  # both results came from the pool
    t = tg.tensor(x)
    np.testing.assert_array_equal(tg.concatenate([t.T, t.T]).numpy(), np.concatenate([x.T] * 2))
