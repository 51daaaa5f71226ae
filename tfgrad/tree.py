"""Nested arguments: tuples, lists and dicts of tensors, flattened and rebuilt."""

from __future__ import annotations

from typing import Any, Callable, Iterator

__all__ = ["tree_flatten", "tree_unflatten", "tree_map"]

# The walkers are module-level functions taking their state as arguments: a nested recursive
# function refers to itself through its closure cell, a reference cycle that kept the list of
# leaves (every big array of a step) alive until the cycle collector ran.


def _walk(node: Any, leaves: list, none_is_leaf: bool) -> Any:
    if isinstance(node, (tuple, list)):
        return (type(node), [_walk(child, leaves, none_is_leaf) for child in node])
    if isinstance(node, dict):
        keys = sorted(node)
        return (dict, keys, [_walk(node[k], leaves, none_is_leaf) for k in keys])
    if node is None and not none_is_leaf:
        return (None,)
    leaves.append(node)
    return ("leaf",)


def tree_flatten(tree: Any, none_is_leaf: bool = False) -> tuple[list, Any]:
    """The leaves of ``tree`` in a fixed order (dict keys sorted) and a description of it.

    ``None`` is an empty subtree unless ``none_is_leaf`` (as for gradients, where it means 0).
    """
    leaves: list = []
    treedef = _walk(tree, leaves, none_is_leaf)
    return leaves, treedef


def _build(d: Any, it: Iterator) -> Any:
    if d[0] == "leaf":
        return next(it)
    if d[0] is None:
        return None
    if d[0] is dict:
        return {k: _build(child, it) for k, child in zip(d[1], d[2])}
    return d[0](_build(child, it) for child in d[1])


def tree_unflatten(treedef: Any, leaves: list) -> Any:
    return _build(treedef, iter(leaves))


def tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    leaves, treedef = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    return tree_unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])
