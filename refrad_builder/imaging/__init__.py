"""Imaging: volumes, orientation, segmentation backends, slices, windows, boxes, PNG."""
