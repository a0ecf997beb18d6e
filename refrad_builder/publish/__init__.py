"""Publishing a run: WebDataset shard writing (``shardwriter``), the dataset card (``card``),
the HTML preview (``preview``), validation of shards (``validate``), JSON Schema generation
(``schema_gen``) and the RefRad2D on-disk export (``refrad2d``).

Reads the engine's records and the text package's token format; never re-runs a stage.
"""
