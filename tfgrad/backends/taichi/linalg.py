"""The linear-algebra family: the matrix product kernel (a batch of ``(m, k) @ (k, n)``, one
MR x NR output tile per task), its host adapter and the table.

One kernel, two loops (Taichi runs a kernel's top-level loops one after the other):

1. *pack*: copy ``a`` into row panels ``ap[q, tile, p, :] = a[q, i0 : i0 + MR, p]`` in the
   compute dtype (float16/bfloat16 decoded to f32 once, here), so the product reads the MR
   values it needs for one ``p`` from one place. ``b`` is read where it lies when it is stored
   in the compute dtype; otherwise (halves, bools, ``n < NR``, rows 4 KiB apart) it is packed
   too, into column panels ``bp[q, col_tile, p, :] = b[q, p, j0 : j0 + NR]``.
2. *product*: a task keeps an MR x NR tile of accumulators and walks ``k`` once, in order; for
   each ``p`` it reads MR values of ``ap`` and NR contiguous values of ``b`` and does MR*NR
   independent multiply-adds, then stores the tile.

The last tile of a row (column) starts at ``m - MR`` (``n - NR``), overlapping its neighbour,
so no tile has a partial edge: no padding, no guards (both tiles write the overlap, the same
values). Only ``m < MR`` or ``n < NR`` (``edges``) guards its stores.

# NOTE: why this is fast without fast math. ``fast_math=False`` (IEEE NaN/inf semantics) forbids
# reassociating the sum along k, so no vectorising *along k*. Vectorising *across* the NR columns
# needs none: the NR accumulators of a row are independent, and LLVM's SLP vectoriser turns each
# row's update into one vector multiply and one vector add (``a`` broadcast, the row of ``b``
# one vector load) -- provided it can prove the NR loads adjacent. Taichi computes indices in i32
# and sign-extends them with no no-overflow flag, so ``sext(i + 1)`` is not provably
# ``sext(i) + 1`` and the loads stay scalar (the old 4x4 kernel's speed: benchmarks/README.md).
# Masking the base index with ``& 0x3FFFFFFF`` (a no-op below 2^30) bounds its range, LLVM proves
# ``base + c`` cannot overflow, and loads and arithmetic vectorise. On Zen 4 a vector multiply
# and a vector add per cycle (separate pipes) match one FMA per cycle: fast math would not be
# faster.
#
# Every sum runs p = 0, 1, ..., k-1 in one accumulator, so a result does not depend on the tile
# shape, the thread count or whether b was packed (bar FMA contraction on a GPU).

Halves accumulate in f32; integers in their own dtype (wrapping, as NumPy's matmul); bools in
i32, stored as ``sum != 0``.
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import math
from typing import NamedTuple

import taichi as ti

from ...errors import DtypeError, ShapeError
from .buffers import BFLOAT16, BOOL, FLOAT16, FLOAT32, INT32
from .codec import compute_zero, load, store
from .movement import broadcast_to

# Indices are masked with INDEX_LIMIT - 1 (see the module note); the backend refuses operands
# and scratch of INDEX_LIMIT elements or more.
INDEX_LIMIT = 1 << 30
_MASK = INDEX_LIMIT - 1


def _host_vector_bytes() -> int:
    """64 where the CPU has AVX-512 (Taichi compiles for the host), else 32 (AVX2, or two NEON
    registers)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return 32
    return 64 if features.get("AVX512F") else 32


_VECTOR_BYTES = _host_vector_bytes()


class Plan(NamedTuple):
    """How :func:`matmul_kernel` runs one product: its compile-time parameters and the size of
    its scratch (in elements of the compute dtype)."""

    MR: int  # rows of a tile
    NR: int  # columns of a tile
    G: int  # row tiles per group: one thread's consecutive tiles (see _product)
    KB: int  # steps of p per packing task
    pack_b: bool
    edges: bool  # m < MR or n < NR: the tiles' stores are guarded
    scratch: int  # elements of the compute dtype
    pack_spread: int  # log2 of the loop iterations per task when the loop runs in parallel
    product_spread: int


def plan(m: int, k: int, n: int, batches: int, itemsize: int, b_direct: bool, device: str) -> Plan:
    """The plan for ``batches`` products ``(m, k) @ (k, n)`` in a compute dtype of ``itemsize``
    bytes; ``b_direct``: b is stored in the compute dtype, so the kernel may read it in place.

    On the CPU a tile row is one vector register of accumulators (64 bytes with AVX-512, else
    32), and 8 or more rows give enough independent adds to hide the add latency; groups of 4
    row tiles share a column panel of b in cache; a packing task copies 64 steps of p
    (measured on Zen 4: benchmarks/README.md).
    ``n <= 4`` (a matrix times a vector) takes 4 columns rather than a vector's worth of padding.
    On a GPU a thread has fewer registers: 4x4 tiles; consecutive threads take consecutive
    column tiles (G = 1), so a warp reads one contiguous stretch of b and shares one row panel
    of a; a packing task copies one step of p (more threads)."""
    if device == "cpu":
        NR, G, KB = _VECTOR_BYTES // itemsize, 4, 64
        # 128 accumulators: 8 vectors, or 16 for f64 with AVX-512 (32 registers); larger tiles
        # compile far longer for little (benchmarks/README.md, "Matmul tiles").
        MR = 128 // NR if _VECTOR_BYTES == 64 else 8
    else:
        MR, NR, G, KB = 4, 4, 1, 1
    if n <= 4:
        NR = 4
    # b's rows 4 KiB apart (n = 1024 f32, 512 f64) put a column panel in a few cache sets
    # (L1 and L2 thrash): packed, it is contiguous (benchmarks/README.md, "Matmul tiles")
    pack_b = not (b_direct and n >= NR) or (device == "cpu" and n * itemsize % 4096 == 0)
    row_tiles, col_tiles, blocks = -(-m // MR), -(-n // NR), -(-k // KB)
    scratch = batches * k * (row_tiles * MR + (col_tiles * NR if pack_b else 0))
    pack_tasks = batches * blocks * (row_tiles + (col_tiles if pack_b else 0))
    return Plan(
        MR,
        NR,
        G,
        KB,
        pack_b,
        m < MR or n < NR,
        scratch,
        _spread(pack_tasks, 32, device),  # a task: MR*KB or NR*KB elements
        _spread(batches * row_tiles * col_tiles, 8, device),  # a tile: 2*MR*NR*k flops
    )


def _spread(tasks: int, per_chunk: int, device: str) -> int:
    """log2 of the loop iterations per task in a parallel loop of ``tasks`` tasks, so that
    Taichi's chunks of 512 iterations hold ``per_chunk`` tasks (fewer if there are few tasks:
    4 chunks at least).

    # NOTE: Taichi 1.7 hands a CPU thread at least 512 consecutive iterations of a parallel
    # loop (``cpu_block_dim_adaptive``, a global ``ti.init`` option; ``ti.loop_config`` cannot
    # lower it): a loop of 256 tiles ran on one thread, and 2048 tiles in 4 chunks left one
    # thread idle at the end. Spread over ``tasks << spread`` iterations, of which every
    # ``2**spread``-th runs a task, tasks reach both threads in small chunks, at ~1-2 ns per
    # idle iteration."""
    if device != "cpu" or not tasks:
        return 0
    least = (512 // per_chunk).bit_length() - 1
    return min(max(least, ((2048 - 1) // tasks).bit_length()), 9)


@ti.func
def _tile(
    ap: ti.template(),
    a0,
    b: ti.template(),
    b0,
    stride,
    k,
    MR: ti.template(),
    NR: ti.template(),
    zero,
):
    """sum_p ap[a0 + p*MR + r] * b[b0 + p*stride + c] for an MR x NR tile, p in order."""
    acc = ti.Matrix([[zero for _ in ti.static(range(NR))] for _ in ti.static(range(MR))])
    for p in range(k):
        ai = (a0 + p * MR) & _MASK  # the masks let LLVM vectorise (module note)
        bi = (b0 + p * stride) & _MASK
        column = ti.Vector([ap[ai + r] for r in ti.static(range(MR))])
        row = ti.Vector([load(b, bi + c) for c in ti.static(range(NR))])
        for r in ti.static(range(MR)):  # nested static loops: no unrolling warning past 32
            for c in ti.static(range(NR)):
                acc[r, c] += column[r] * row[c]
    return acc


@ti.func
def _pack_a(
    a: ti.template(),
    packed: ti.template(),
    e,
    m,
    k,
    row_tiles,
    blocks,
    MR: ti.template(),
    KB: ti.template(),
    zero,
):
    """ap[q, tile, p, :] = a[q, tile*MR : tile*MR + MR, p] for KB steps of p (task e)."""
    qt = e // blocks  # q * row_tiles + tile
    i0 = ti.min((qt % row_tiles) * MR, ti.max(m - MR, 0))  # the last tile ends at row m
    src = ((qt // row_tiles) * m + i0) * k
    dst = qt * k * MR
    rows = ti.min(m - i0, MR)
    for p in range((e % blocks) * KB, ti.min((e % blocks + 1) * KB, k)):
        # all loads, then all stores: a store may alias the kernel's argument pointers (no
        # type-based alias information), so LLVM reloads them after each store
        column = ti.Vector([zero for _ in ti.static(range(MR))])
        if rows == MR:
            column = ti.Vector([load(a, src + r * k + p) for r in ti.static(range(MR))])
        else:
            for r in ti.static(range(MR)):
                if r < rows:
                    column[r] = load(a, src + r * k + p)
        d = (dst + p * MR) & _MASK
        for r in ti.static(range(MR)):
            packed[d + r] = column[r]


@ti.func
def _pack_b(
    b: ti.template(),
    packed: ti.template(),
    f,
    k,
    n,
    col_tiles,
    blocks,
    b_start,
    NR: ti.template(),
    KB: ti.template(),
    zero,
):
    """bp[q, col_tile, p, :] = b[q, p, col_tile*NR : col_tile*NR + NR] for KB steps of p."""
    qc = f // blocks  # q * col_tiles + col_tile
    j0 = ti.min((qc % col_tiles) * NR, ti.max(n - NR, 0))  # the last tile ends at column n
    src = (qc // col_tiles) * k * n + j0
    dst = b_start + qc * k * NR
    cols = ti.min(n - j0, NR)
    for p in range((f % blocks) * KB, ti.min((f % blocks + 1) * KB, k)):
        row = ti.Vector([zero for _ in ti.static(range(NR))])
        if cols == NR:
            s0 = (src + p * n) & _MASK
            row = ti.Vector([load(b, s0 + c) for c in ti.static(range(NR))])
        else:
            for c in ti.static(range(NR)):
                if c < cols:
                    row[c] = load(b, src + p * n + c)
        d = (dst + p * NR) & _MASK
        for c in ti.static(range(NR)):
            packed[d + c] = row[c]


@ti.func
def _product(
    b: ti.template(),
    packed: ti.template(),
    out: ti.template(),
    t,
    m,
    k,
    n,
    row_tiles,
    col_tiles,
    G,
    b_start,
    MR: ti.template(),
    NR: ti.template(),
    pack_b: ti.template(),
    edges: ti.template(),
    zero,
):
    """Tile t of the product, written to out."""
    # t -> (q, group of G row tiles, column tile, row tile in the group): one thread's
    # consecutive tiles share a row panel of a, and G of them one column panel of b
    q = t // (row_tiles * col_tiles)
    u = t % (row_tiles * col_tiles)
    first = u // (G * col_tiles) * G  # the group's first row tile
    height = ti.min(G, row_tiles - first)
    v = u - first * col_tiles
    col_tile = v // height
    tile = first + v % height
    # the last tile of a row or column ends at row m or column n, overlapping its neighbour
    # (both write the overlap, the same values: each element's sum runs the same way)
    i0 = ti.min(tile * MR, ti.max(m - MR, 0))
    j0 = ti.min(col_tile * NR, ti.max(n - NR, 0))
    a0 = (q * row_tiles + tile) * k * MR
    acc = ti.Matrix([[zero for _ in ti.static(range(NR))] for _ in ti.static(range(MR))])
    if ti.static(pack_b):
        b0 = b_start + (q * col_tiles + col_tile) * k * NR
        acc = _tile(packed, a0, packed, b0, NR, k, MR, NR, zero)
    else:
        acc = _tile(packed, a0, b, q * k * n + j0, n, k, MR, NR, zero)
    # everything the stores need is computed before the first (see _pack_a)
    starts = ti.Vector([((q * m + i0 + r) * n + j0) & _MASK for r in ti.static(range(MR))])
    if ti.static(not edges):
        for r in ti.static(range(MR)):
            for c in ti.static(range(NR)):
                store(out, starts[r] + c, acc[r, c])
    else:  # m < MR or n < NR: a runtime loop over columns (static guards compile slowly)
        rows = ti.min(m, MR)
        cols = ti.min(n, NR)
        for r in ti.static(range(MR)):
            if r < rows:
                row = ti.Vector([acc[r, c] for c in ti.static(range(NR))])
                for c in range(cols):
                    store(out, starts[r] + c, row[c])


@ti.kernel
def matmul_kernel(
    a: ti.types.ndarray(ndim=1),
    b: ti.types.ndarray(ndim=1),
    packed: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    batches: ti.i32,
    m: ti.i32,
    k: ti.i32,
    n: ti.i32,
    G: ti.i32,
    pack_spread: ti.i32,
    product_spread: ti.i32,
    MR: ti.template(),
    NR: ti.template(),
    KB: ti.template(),
    pack_b: ti.template(),
    edges: ti.template(),
    serial_pack: ti.template(),
    serial: ti.template(),
):
    # out[q, i, j] = sum_p a[q, i, p] * b[q, p, j], for every batch q
    row_tiles = (m + MR - 1) // MR
    col_tiles = (n + NR - 1) // NR
    zero = compute_zero(a)
    b_start = batches * row_tiles * k * MR  # packed = ap, then bp

    # 1. pack: a task copies KB steps of p of one row panel of a or one column panel of b
    # (index arithmetic, divisions of ~25 cycles, per task rather than per element)
    blocks = (k + KB - 1) // KB
    a_tasks = batches * row_tiles * blocks
    b_tasks = batches * col_tiles * blocks if ti.static(pack_b) else 0
    if ti.static(serial_pack):
        ti.loop_config(serialize=True)
    for i in range((a_tasks + b_tasks) << pack_spread):
        if i & ((1 << pack_spread) - 1) == 0:  # one task per 2**spread iterations: see _spread
            e = i >> pack_spread
            if e < a_tasks:
                _pack_a(a, packed, e, m, k, row_tiles, blocks, MR, KB, zero)
            else:
                _pack_b(b, packed, e - a_tasks, k, n, col_tiles, blocks, b_start, NR, KB, zero)

    # 2. product: O(mnk) multiply-adds
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range((batches * row_tiles * col_tiles) << product_spread):
        if i & ((1 << product_spread) - 1) == 0:
            t = i >> product_spread
            _product(
                b,
                packed,
                out,
                t,
                m,
                k,
                n,
                row_tiles,
                col_tiles,
                G,
                b_start,
                MR,
                NR,
                pack_b,
                edges,
                zero,
            )


# ---- Host adapter ----
# The dtype the packed operands are stored in (NumPy on the CPU computes these the same way)
COMPUTE = {BOOL: INT32, FLOAT16: FLOAT32, BFLOAT16: FLOAT32}


def matmul(backend, op, a, b):
    if a.dtype != b.dtype:
        raise DtypeError(f"matmul: dtypes {a.dtype} and {b.dtype}; cast to one.")
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape}; 0-d arrays have no rows.")
    vector_a, vector_b = a.ndim == 1, b.ndim == 1
    a2 = a.reshape((1,) + a.shape) if vector_a else a
    b2 = b.reshape(b.shape + (1,)) if vector_b else b
    batch = a2.shape[:-2]
    (m, k), (k2, n) = a2.shape[-2:], b2.shape[-2:]
    if k != k2 or (batch != b2.shape[:-2] and not (vector_a or vector_b)):
        raise ShapeError(
            f"matmul: shapes {a.shape} and {b.shape} do not fit; need (..., m, k) @ "
            "(..., k, n) with equal batch dimensions."
        )
    if vector_b and a2.ndim > 2:
        b2 = broadcast_to(backend, None, b2, batch + b2.shape)
    if vector_a and b2.ndim > 2:
        batch = b2.shape[:-2]
        a2 = broadcast_to(backend, None, a2, batch + a2.shape)
    out = backend.empty(batch + (m, n), a.dtype)
    if out.size:
        compute = COMPUTE.get(a.dtype, a.dtype)
        count = math.prod(batch)
        tiles = plan(m, k, n, count, compute.itemsize, compute == a.dtype, backend.device)
        if max(tiles.scratch, a2.size, b2.size, out.size) >= INDEX_LIMIT:
            raise ShapeError(
                f"matmul: shapes {a.shape} and {b.shape} are too large for the Taichi "
                f"kernel's 32-bit indexing (limit {INDEX_LIMIT} elements)."
            )
        # a vectorised multiply-add costs ~1/64 of an element of a memory-bound op, and a
        # parallel loop a thread wake-up (benchmarks/README.md, "Serial loops" and "Matmul")
        serial_pack = backend.serial(tiles.scratch)
        serial = backend.serial(out.size * max(k, 1) // 64)
        matmul_kernel(
            backend.arg(a2),
            backend.arg(b2),
            backend.arg(backend.empty((max(tiles.scratch, 1),), compute)),
            backend.arg(out),
            count,
            m,
            k,
            n,
            tiles.G,
            0 if serial_pack else tiles.pack_spread,
            0 if serial else tiles.product_spread,
            tiles.MR,
            tiles.NR,
            tiles.KB,
            tiles.pack_b,
            tiles.edges,
            serial_pack,
            serial,
        )
    shape = batch + ((m,) if not vector_a else ()) + ((n,) if not vector_b else ())
    return out.reshape(shape)


LINALG = {"matmul": matmul}
