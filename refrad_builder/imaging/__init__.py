"""Imaging: from de-identified DICOM to slices. Series headers, assembly and decoding into a
volume (``series_*``), canonical orientation, NIfTI, segmentation backends (TotalSegmentator,
precomputed outputs, classical), slice choice, windows, boxes and 16-bit PNG.

May import ``engine`` (records, config) and ``anatomy``; never reports, text or publish.
"""
