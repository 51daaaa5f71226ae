"""Nested arguments: tuples, lists and dicts of tensors, flattened and rebuilt."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["tree_flatten", "tree_unflatten", "tree_map"]


def tree_flatten(tree: Any, none_is_leaf: bool = False) -> tuple[list, Any]:
    """The leaves of ``tree`` in a fixed order (dict keys sorted) and a description of it.

    ``None`` is an empty subtree unless ``none_is_leaf`` (as for gradients, where it means 0).
    """
    leaves: list = []

    def walk(node):
        if isinstance(node, (tuple, list)):
            return (type(node), [walk(child) for child in node])
        if isinstance(node, dict):
            keys = sorted(node)
            return (dict, keys, [walk(node[k]) for k in keys])
        if node is None and not none_is_leaf:
            return (None,)
        leaves.append(node)
        return ("leaf",)

    return leaves, walk(tree)


def tree_unflatten(treedef: Any, leaves: list) -> Any:
    it = iter(leaves)

    def build(d):
        if d[0] == "leaf":
            return next(it)
        if d[0] is None:
            return None
        if d[0] is dict:
            return {k: build(child) for k, child in zip(d[1], d[2])}
        return d[0](build(child) for child in d[1])

    return build(treedef)


def tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    leaves, treedef = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    return tree_unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])
