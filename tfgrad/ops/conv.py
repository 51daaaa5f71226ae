r"""2-D convolution: ``conv2d`` and the two primitives its derivatives need.

With ``x`` of shape (N, C, H, W) (NCHW), ``w`` of shape (O, C, KH, KW) (OIHW), stride
``(sh, sw)``, zero padding ``(ph, pw)`` and dilation ``(dh, dw)``, conv2d is PyTorch's (a
cross-correlation, no kernel flip)::

    y[n, o, i, j] = sum_{c, p, q} x_pad[n, c, i*sh + p*dh, j*sw + q*dw] * w[o, c, p, q]
    OH = (H + 2 ph - dh (KH - 1) - 1) // sh + 1        (OW likewise)

``y`` is bilinear in ``(x, w)``. So is each of its transposes, the two other primitives here
(JAX's design, ``lax.conv_general_dilated`` and its transposes):

- ``conv2d_input_grad(g, w)``, of shape (N, C, H, W): ``dx`` for a cotangent ``g`` of ``y``
  (the transposed convolution);
- ``conv2d_weight_grad(x, g)``, of shape (O, C, KH, KW): ``dw``.

All three are partial derivatives of one trilinear form, ``T(x, w, g) = <g, conv2d(x, w)>``,
so the VJP and JVP rules of each are the other two (or itself), applied with the same stride,
padding and dilation: derivatives of every order are exact and stay convolutions.
"""

from __future__ import annotations

from typing import Any

from ..backends.base import LINALG
from ..errors import DtypeError, ShapeError
from ..primitive import Primitive, bind
from ..tensor import Tensor
from ._common import as_tensor, promote_args_nobroadcast
from .creation import zeros
from .elementwise import add
from .movement import reshape, transpose

__all__ = ["conv2d", "conv2d_p", "conv2d_input_grad_p", "conv2d_weight_grad_p"]


def _swap01(t: Tensor) -> Tensor:
    return transpose(t, (1, 0) + tuple(range(2, t.ndim)))


def _merge(t: Tensor, first: int) -> Tensor:
    """Axes ``first`` and ``first + 1`` of ``t`` as one."""
    s = t.shape
    return reshape(t, s[:first] + (s[first] * s[first + 1],) + s[first + 2 :])


def _split(t: Tensor, axis: int, lead: int) -> Tensor:
    """Axis ``axis`` of ``t`` as ``(lead, rest)``."""
    s = t.shape
    return reshape(t, s[:axis] + (lead, s[axis] // lead) + s[axis + 1 :])


def _batch_into(t: Tensor, axis: int) -> Tensor:
    """A batched tangent (B, ...) with its batch axis merged into axis ``axis`` of the value
    (B outermost): (B, N, ...) into N for ``axis`` 0, (B, N, C, ...) into C for ``axis`` 1."""
    if axis == 1:
        t = _swap01(t)  # (N, B, C, ...)
    return _merge(t, axis)


def _batch_out(t: Tensor, axis: int, batch: int) -> Tensor:
    """The inverse of :func:`_batch_into`: axis ``axis`` (B outermost) split and moved first."""
    t = _split(t, axis, batch)
    return _swap01(t) if axis == 1 else t


def _batched(prim: Primitive, slots: tuple[tuple[int, int], tuple[int, int]]):
    """The batched JVP of a bilinear primitive whose input ``i`` carries the batch on axis
    ``slots[0][i]`` and whose output carries it, for each input, on ``slots[1][i]``: the B
    tangents ride along an axis the primitive keeps apart (images, or channels), so B tangents
    cost one call, not B."""
    in_axes, out_axes = slots

    def rule(ts, ans, a, b, batch, **params):
        if batch == 0:
            return zeros((0,) + ans.shape, ans.dtype)
        out = None
        for i, t in enumerate(ts):
            if t is None:
                continue
            args = [a, b]
            args[i] = _batch_into(t, in_axes[i])
            term = _batch_out(bind(prim, *args, **params), out_axes[i], batch)
            out = term if out is None else add(out, term)
        return out

    return rule


# ---- The three primitives, declared together: each one's rules are the other two ----
# Bilinear, not linear (Primitive's ``linear`` means linear in every input at once), so each
# has a JVP rule per input: the tangent in that slot, the other input as it is. So a tape keeps
# both inputs of each (the other one's rule reads them) and none of the outputs.
conv2d_p = Primitive("conv2d", 2, family=LINALG, saves=(0, 1))  # y = conv2d(x, w)
conv2d_input_grad_p = Primitive(  # dx = ...(g, w)
    "conv2d_input_grad", 2, family=LINALG, saves=(0, 1)
)
conv2d_weight_grad_p = Primitive(  # dw = ...(x, g)
    "conv2d_weight_grad", 2, family=LINALG, saves=(0, 1)
)


def _input_grad(g, w, x_shape, stride, padding, dilation):
    return bind(conv2d_input_grad_p, g, w, input_size=tuple(x_shape[2:]), stride=stride,
                padding=padding, dilation=dilation)  # fmt: skip


def _weight_grad(x, g, w_shape, stride, padding, dilation):
    return bind(conv2d_weight_grad_p, x, g, kernel_size=tuple(w_shape[2:]), stride=stride,
                padding=padding, dilation=dilation)  # fmt: skip


def _conv(x, w, stride, padding, dilation):
    return bind(conv2d_p, x, w, stride=stride, padding=padding, dilation=dilation)


# ---- conv2d: <g, y> = T(x, w, g); dx = ∂T/∂x, dw = ∂T/∂w ----
def conv2d_vjp_x(g, ans, x, w, stride, padding, dilation):
    return _input_grad(g, w, x.shape, stride, padding, dilation)


def conv2d_vjp_w(g, ans, x, w, stride, padding, dilation):
    return _weight_grad(x, g, w.shape, stride, padding, dilation)


conv2d_p.defvjp(conv2d_vjp_x, conv2d_vjp_w)
conv2d_p.defjvp(
    lambda t, ans, x, w, **params: _conv(t, w, **params),
    lambda t, ans, x, w, **params: _conv(x, t, **params),
)
# the batch of tangents rides on the images (x) or on the output channels (w)
conv2d_p.def_batched_jvp(_batched(conv2d_p, ((0, 0), (0, 1))))


# ---- conv2d_input_grad(g, w): <u, dx> = T(u, w, g) ----
def input_grad_vjp_g(u, ans, g, w, input_size, stride, padding, dilation):
    return _conv(u, w, stride, padding, dilation)


def input_grad_vjp_w(u, ans, g, w, input_size, stride, padding, dilation):
    return _weight_grad(u, g, w.shape, stride, padding, dilation)


conv2d_input_grad_p.defvjp(input_grad_vjp_g, input_grad_vjp_w)
conv2d_input_grad_p.defjvp(
    lambda t, ans, g, w, **params: bind(conv2d_input_grad_p, t, w, **params),
    lambda t, ans, g, w, **params: bind(conv2d_input_grad_p, g, t, **params),
)
# on the images (g), or on the input channels (w: (B, O, C, ...) -> (O, B*C, ...))
conv2d_input_grad_p.def_batched_jvp(_batched(conv2d_input_grad_p, ((0, 1), (0, 1))))


# ---- conv2d_weight_grad(x, g): <u, dw> = T(x, u, g) ----
def weight_grad_vjp_x(u, ans, x, g, kernel_size, stride, padding, dilation):
    return _input_grad(g, u, x.shape, stride, padding, dilation)


def weight_grad_vjp_g(u, ans, x, g, kernel_size, stride, padding, dilation):
    return _conv(x, u, stride, padding, dilation)


conv2d_weight_grad_p.defvjp(weight_grad_vjp_x, weight_grad_vjp_g)
conv2d_weight_grad_p.defjvp(
    lambda t, ans, x, g, **params: bind(conv2d_weight_grad_p, t, g, **params),
    lambda t, ans, x, g, **params: bind(conv2d_weight_grad_p, x, t, **params),
)
# on the input channels (x) or on the output channels (g): dw's axes 1 and 0
conv2d_weight_grad_p.def_batched_jvp(_batched(conv2d_weight_grad_p, ((1, 1), (1, 0))))


# ---- The front end ----
def _pair(op: str, name: str, value: Any, least: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else value
    ok = (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in pair)
    )
    if not ok:
        raise ShapeError(
            f"{op}: {name} must be an int >= {least} or a pair of them (rows, columns), got "
            f"{value!r}."
        )
    return (int(pair[0]), int(pair[1]))


def conv2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> Tensor:
    r"""2-D convolution of a batch of images, as ``torch.nn.functional.conv2d`` (no bias: add
    one with ``+ b.reshape(1, -1, 1, 1)``).

    ``x``: (N, C, H, W) images; ``w``: (O, C, KH, KW) kernels; ``stride``, ``padding`` (zeros on
    each side) and ``dilation``: an int or a pair (rows, columns). The result has shape
    (N, O, OH, OW), ``OH = (H + 2 padding - dilation (KH - 1) - 1) // stride + 1``:

    .. math:: y_{noij} = \sum_{c,p,q} x_{n,c,\,i s_h + p d_h - p_h,\,j s_w + q d_w - p_w}\,
              w_{ocpq}

    Bilinear in ``(x, w)``; its derivatives are convolutions again (transposed, or against the
    cotangent), exact to every order. Costs ``2 N O OH OW C KH KW`` flops; the gradient twice
    that.

    >>> import tfgrad as tg
    >>> x = tg.ones((1, 1, 4, 4))
    >>> tg.conv2d(x, tg.ones((2, 1, 3, 3)), padding=1).shape
    (1, 2, 4, 4)
    >>> tg.conv2d(x, tg.ones((1, 1, 3, 3))).numpy().ravel().tolist()
    [9.0, 9.0, 9.0, 9.0]
    """
    x, w = as_tensor(x), as_tensor(w)
    op = "conv2d"
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(
            f"{op}: needs x of shape (N, C, H, W) and w of shape (O, C, KH, KW), got x "
            f"{x.shape} and w {w.shape}; add a batch axis with expand_dims(x, 0) for one image, "
            "or reshape."
        )
    for name, t in (("x", x), ("w", w)):
        if not t.dtype.is_floating:
            raise DtypeError(
                f"{op}: {name} has dtype {t.dtype.name} (x {x.shape}, w {w.shape}); conv2d "
                f"takes floating tensors: cast with {name}.astype('float32')."
            )
    stride = _pair(op, "stride", stride, 1)
    padding = _pair(op, "padding", padding, 0)
    dilation = _pair(op, "dilation", dilation, 1)
    if x.shape[1] != w.shape[1]:
        raise ShapeError(
            f"{op}: x {x.shape} has {x.shape[1]} channels but w {w.shape} expects "
            f"{w.shape[1]} (w is (out_channels, in_channels, KH, KW)); give w in_channels = "
            f"{x.shape[1]}."
        )
    for axis, side in ((2, "height"), (3, "width")):
        k = axis - 2
        span = dilation[k] * (w.shape[axis] - 1) + 1
        padded = x.shape[axis] + 2 * padding[k]
        if span > padded:
            raise ShapeError(
                f"{op}: the kernel's {side} ({w.shape[axis]}, spanning {span} with dilation "
                f"{dilation[k]}) exceeds the padded input's ({padded}: x {x.shape}, padding "
                f"{padding[k]}); use a smaller kernel or dilation, or more padding."
            )
    x, w = promote_args_nobroadcast(op, [x, w])
    return _conv(x, w, stride, padding, dilation)
