"""gengap's ground floor: the mechanisms every layer uses.

Errors (:mod:`~gengap.core.errors`), argument checks (:mod:`~gengap.core.checks`), files
(atomic writes, the JSON and TOML readers: :mod:`~gengap.core.files`), config <-> dict
(:mod:`~gengap.core.config`), provenance, the executor and the space <-> JSON codec.
``gengap.core`` imports no other gengap layer (``tests/test_layering.py`` checks it), and
nothing above re-exports what it defines: import it from here.
"""
