"""Exports of a finished run besides the WebDataset shards."""

from refrad_builder.exports.refrad2d import ExportItem, export_refrad2d, items_from_upstream

__all__ = ["ExportItem", "export_refrad2d", "items_from_upstream"]
