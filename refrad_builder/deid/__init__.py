"""DICOM de-identification: PS3.15 Annex E Basic Profile core with the options refrad uses.

``profile`` loads the action table, ``actions`` applies it at every sequence depth and
``series`` de-identifies whole series (UID remapping, date shift, burned-in policy).
"""

from refrad_builder.deid.actions import is_well_known_uid, remap_uid
from refrad_builder.deid.profile import Profile, ProfileError, load_profile
from refrad_builder.deid.series import (
    InstanceUids,
    SeriesIds,
    SeriesResult,
    SourceUnavailable,
    UnreadableDicom,
    deidentify_dataset,
    deidentify_series,
    encode,
    is_burned_in,
    read_source,
)

__all__ = [
    "InstanceUids",
    "Profile",
    "ProfileError",
    "SeriesIds",
    "SeriesResult",
    "SourceUnavailable",
    "UnreadableDicom",
    "deidentify_dataset",
    "deidentify_series",
    "encode",
    "is_burned_in",
    "is_well_known_uid",
    "load_profile",
    "read_source",
    "remap_uid",
]
