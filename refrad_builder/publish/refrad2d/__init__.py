"""The RefRad2D on-disk export (what RadGrounder's loaders read): writer, row models, orientation, validation."""

from refrad_builder.publish.refrad2d.export import export_refrad2d
from refrad_builder.publish.refrad2d.layout import ExportItem, items_from_upstream

__all__ = ["ExportItem", "export_refrad2d", "items_from_upstream"]
