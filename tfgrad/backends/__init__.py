"""Backends: where tfgrad's numbers live and its kernels run (see :mod:`.base`)."""

from .base import Backend, OpInfo, get_backend_class, register_backend

__all__ = ["Backend", "OpInfo", "get_backend_class", "register_backend"]
