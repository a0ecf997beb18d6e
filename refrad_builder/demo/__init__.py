"""Demo data: phantom CT/MR studies with planted PHI, reports, segmentations and a config."""

from refrad_builder.demo.maker import DemoManifest, DemoStudy, make_demo

__all__ = ["DemoManifest", "DemoStudy", "make_demo"]
