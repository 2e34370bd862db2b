"""The shapes world: minicap's embedded, procedural captioning dataset.

- ``scenes``    sampling scenes (one to three coloured shapes) and rendering them
- ``grammar``   the caption grammar: reference generation and the parser
- ``truth``     whether a caption is true of its scene, and why not
- ``grounding`` the pointing game: does attention look at the object it names

``minicap.data.load_shapes`` puts these together into a captioning dataset.
"""
