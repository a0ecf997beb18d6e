"""The bundled trainer (reserved): reads WebDataset shards and their schema only, and imports
no stage and no pipeline internals."""
