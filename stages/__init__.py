"""The pipeline's stages, one thin module per stage (installed as ``refrad_builder.stages``):
each wraps a part's logic in the engine's stage contract (``STAGE`` = a Stage subclass) and
holds no domain logic of its own."""
