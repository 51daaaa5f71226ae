"""Matrix product kernel: a batch of ``(m, k) @ (k, n)``, one 4x4 output tile per thread.

A simple, correct kernel: each thread keeps a 4x4 tile of the output in registers and walks
``k`` once, reading a column of 4 from ``a`` and a row of 4 from ``b`` (contiguous, so
neighbouring GPU threads read neighbouring memory). Reads past the edge are clamped to the last
row/column (valid memory, results discarded), writes are guarded. Halves accumulate in f32;
integers in their own dtype (wrapping, as NumPy's matmul).

# NOTE: with ``fast_math=False`` (IEEE NaN/inf semantics everywhere) LLVM neither fuses nor
# vectorises this loop on the CPU: ~7-12 GFLOP/s (f32, 2 cores) against ~90 with fast math and a
# pre-transposed b, and 170-180 for OpenBLAS. On the CPU, BLAS is the fast path.
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import taichi as ti

from .codec import compute_zero, load, store

TILE = 4


@ti.func
def zero_tile(z):
    return ti.Matrix([[z, z, z, z], [z, z, z, z], [z, z, z, z], [z, z, z, z]])


@ti.kernel
def matmul_kernel(
    a: ti.types.ndarray(ndim=1),
    b: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    m: ti.i32,
    k: ti.i32,
    n: ti.i32,
    serial: ti.template(),
):
    # out[q, i, j] = sum_p a[q, i, p] * b[q, p, j], for every batch q
    row_tiles = (m + TILE - 1) // TILE
    col_tiles = (n + TILE - 1) // TILE
    batches = out.shape[0] // (m * n)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for t in range(batches * row_tiles * col_tiles):
        q = t // (row_tiles * col_tiles)
        i0 = ((t // col_tiles) % row_tiles) * TILE
        j0 = (t % col_tiles) * TILE
        # first elements of the tile's 4 rows of a and 4 columns of b, clamped at the edges
        rows = ti.Vector([q * m * k + ti.min(i0 + r, m - 1) * k for r in ti.static(range(TILE))])
        cols = ti.Vector([q * k * n + ti.min(j0 + c, n - 1) for c in ti.static(range(TILE))])
        acc = zero_tile(compute_zero(a))
        for p in range(k):
            column = ti.Vector([load(a, rows[r] + p) for r in ti.static(range(TILE))])
            row = ti.Vector([load(b, cols[c] + p * n) for c in ti.static(range(TILE))])
            for r, c in ti.static(ti.ndrange(TILE, TILE)):
                acc[r, c] += column[r] * row[c]
        for r, c in ti.static(ti.ndrange(TILE, TILE)):
            if i0 + r < m and j0 + c < n:
                store(out, q * m * n + (i0 + r) * n + j0 + c, acc[r, c])
