"""Backends: where tfgrad's numbers live and its kernels run (see :mod:`.base`)."""

from .base import BACKEND_OPS, Backend, get_backend_class, register_backend

__all__ = ["BACKEND_OPS", "Backend", "get_backend_class", "register_backend"]
