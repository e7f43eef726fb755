"""toysup: the helper package of the toysup book.

``persian_rug`` and ``cis`` hold one paper each and never import each other; ``book`` runs the
chapters and keeps the scorecard; ``checks``, ``fits``, ``plotting``, ``paths`` and ``allocator`` are
shared ground.
"""
