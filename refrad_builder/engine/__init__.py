"""The engine: run configuration, the records that flow between stages, the stage contract,
the ledger, atomic file writes and the runner (Ray or in-process).

It owns *how* items are planned, executed, retried and recorded, not *what* a stage does: it
imports nothing that knows DICOM, reports, text or images (pydicom, SimpleITK, the imaging,
reports, text and publish packages), so any pipeline could run on it. Stages are found by
name in ``refrad_builder.stages``.
"""
