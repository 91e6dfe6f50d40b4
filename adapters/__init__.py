"""Framework adapters: turn a model into an RPG model, and save or load ring files.

Every adapter offers the same verbs: ``rpgify``, ``save``, ``load`` and
``plan_of``. Adapters import their framework; import one only when that
framework is wanted.

Example:
    >>> from rpgcore import adapters
    >>> adapters.ADAPTERS
    ('torch', 'jax', 'keras', 'cupy')

"""

__all__ = ["ADAPTERS", "VERBS"]

ADAPTERS = ("torch", "jax", "keras", "cupy")
"""Every adapter name rpgcore knows."""

VERBS = ("rpgify", "save", "load", "plan_of")
"""The functions every adapter module defines."""
