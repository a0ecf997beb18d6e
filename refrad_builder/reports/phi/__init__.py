"""Header-independent PHI recognizers for German and English report text, one module per kind.

``base`` (the pattern recognizer whose PHI is a named group), ``names``, ``dates``,
``phones``, ``web`` (e-mail, URL), ``ids``, ``addresses``, ``institutions``, ``ages``; their
word lists are data (``data/phi_words.yaml``). :mod:`refrad_builder.reports.presidio_engine`
assembles them into one offline presidio analyzer.
"""
