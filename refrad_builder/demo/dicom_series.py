"""Write a phantom as a single-frame axial DICOM series whose headers carry planted PHI.

PHI sits where real exports put it: the usual patient, physician, institution and device
attributes, free-text descriptions, an ID and name in a private block, and nested sequences
two levels deep (referring physician identification, request attributes, a private
sequence). Every UID is fixed by the seed, and nothing depends on the clock.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
)

from refrad_builder.demo.identities import Visit, birth_text, uid
from refrad_builder.demo.phantom import Grid

PRIVATE_CREATOR = "REFRAD DEMO HIS"
NESTED_PRIVATE_CREATOR = "REFRAD DEMO NESTED"
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"


@dataclass(frozen=True)
class SeriesSpec:
    """What one generated series is: where it goes and how it is encoded."""

    study_folder: str
    series_folder: str
    modality: str
    series_number: int
    rle: bool
    seed: int

    @property
    def study_uid(self) -> str:
        """The study's StudyInstanceUID."""
        return uid(self.seed, self.study_folder, "study")

    @property
    def series_uid(self) -> str:
        """The series' SeriesInstanceUID."""
        return uid(self.seed, self.study_folder, self.series_folder, "series")


def instance_number(spec: SeriesSpec, grid: Grid, k: int) -> int:
    """InstanceNumber of slice ``k``: CT counts head to feet, MR feet to head, as scanners vary."""
    return grid.slices - k if spec.modality == "CT" else k + 1


def _seq(*items: Dataset) -> Sequence:
    return Sequence(list(items))


def _item(**values: object) -> Dataset:
    ds = Dataset()
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


def _phi_header(visit: Visit, spec: SeriesSpec) -> Dataset:
    p, inst, ref = visit.patient, visit.institution, visit.referring
    name = p.person
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = (
        f"{visit.study_date:%Y%m%d}"
    )
    ds.StudyTime = visit.study_time
    ds.AccessionNumber = visit.accession
    ds.Modality = spec.modality
    ds.Manufacturer = "REFRAD PHANTOM WORKS"
    ds.InstitutionName = inst.name
    ds.InstitutionAddress = inst.address
    ds.ReferringPhysicianName = ref.pn
    ds.ReferringPhysicianIdentificationSequence = _seq(
        _item(
            InstitutionName=inst.name,
            PersonIdentificationCodeSequence=_seq(
                _item(
                    CodeValue=visit.referring_id,
                    CodingSchemeDesignator="LANR",
                    CodeMeaning=f"{ref.family}, {ref.given}",
                )
            ),
        )
    )
    ds.StationName = inst.stations[spec.modality]
    ds.StudyDescription = f"{spec.modality} Abdomen ({name.family}, {name.given})"
    ds.ProcedureCodeSequence = _seq(
        _item(
            CodeValue=f"{spec.modality}ABD",
            CodingSchemeDesignator="99REFRAD",
            CodeMeaning=f"{spec.modality} Abdomen",
        )
    )
    ds.InstitutionalDepartmentName = inst.department
    ds.PhysiciansOfRecord = ref.pn
    ds.PerformingPhysicianName = visit.performing.pn
    ds.NameOfPhysiciansReadingStudy = visit.reading.pn
    ds.OperatorsName = inst.technologist.pn
    ds.PatientName = name.pn
    ds.PatientID = p.patient_id
    ds.IssuerOfPatientID = p.issuer
    ds.PatientBirthDate = f"{p.birth:%Y%m%d}"
    ds.PatientSex = p.sex
    ds.OtherPatientIDs = p.other_id
    ds.OtherPatientIDsSequence = _seq(
        _item(PatientID=p.other_id, IssuerOfPatientID=p.issuer, TypeOfPatientID="TEXT")
    )
    ds.PatientAge = f"{visit.age_years():03d}Y"
    ds.PatientAddress = p.address
    ds.PatientTelephoneNumbers = p.phone
    ds.DeviceSerialNumber = inst.device_serials[spec.modality]
    ds.StudyID = visit.study_id
    ds.RequestingPhysician = ref.pn
    ds.RequestAttributesSequence = _seq(
        _item(
            RequestedProcedureID=visit.request_id,
            ScheduledProcedureStepID=visit.request_id,
            AccessionNumber=visit.accession,
            IssuerOfAccessionNumberSequence=_seq(_item(LocalNamespaceEntityID=inst.name)),
            ReferencedStudySequence=_seq(
                _item(
                    ReferencedSOPClassUID=DETACHED_STUDY_MANAGEMENT,
                    ReferencedSOPInstanceUID=uid(spec.seed, spec.study_folder, "request"),
                )
            ),
            RequestedProcedureDescription=f"{spec.modality} Abdomen {name.family}",
        )
    )
    ds.ImageComments = (
        f"Pat. {name.family}, {name.given}, geb. {birth_text(p.birth, 'de')}"
        if visit.language == "de"
        else f"Patient {name.given} {name.family}, DOB {birth_text(p.birth, 'en')}"
    )

    block = ds.private_block(0x0033, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", f"{name.family}^{name.given}")
    block.add_new(0x11, "LO", p.legacy_id)
    nested = Dataset()
    inner = nested.private_block(0x0035, NESTED_PRIVATE_CREATOR, create=True)
    inner.add_new(0x10, "LO", f"Zuweiser {ref.family} {ref.given}")
    nested.RequestingPhysician = ref.pn
    nested.OtherPatientIDsSequence = _seq(_item(PatientID=p.legacy_id, IssuerOfPatientID=p.issuer))
    block.add_new(0x20, "SQ", _seq(nested))
    return ds


def _modality_header(ds: Dataset, spec: SeriesSpec, grid: Grid) -> None:
    ds.SliceThickness = f"{grid.slice_spacing:g}"
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "ABDOMEN"
    if spec.modality == "CT":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ManufacturerModelName = "Phantom CT 64"
        ds.SeriesDescription = f"Abdomen pv {grid.slice_spacing:g} B30f"
        ds.ProtocolName = "Abdomen KM"
        ds.ContrastBolusAgent = "Iomeprol 350"
        ds.KVP = "120"
        ds.ConvolutionKernel = "B30f"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = ["40", "-600"]
        ds.WindowWidth = ["400", "1500"]
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ManufacturerModelName = "Phantom MR 1.5T"
        ds.SeriesDescription = "t2_haste_tra"
        ds.ProtocolName = "t2_haste_tra"
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "SK"
        ds.MRAcquisitionType = "2D"
        ds.MagneticFieldStrength = "1.5"
        ds.RepetitionTime = "1400"
        ds.EchoTime = "92"
        ds.SpacingBetweenSlices = f"{grid.slice_spacing:g}"


def write_series(
    out_dir: Path, spec: SeriesSpec, visit: Visit, grid: Grid, values: np.ndarray
) -> dict[int, int]:
    """Write one file per slice to ``out_dir``; returns slice index -> InstanceNumber.

    ``values`` holds HU (CT) or signal (MR) shaped (slices, rows, columns).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = values + 1024.0 if spec.modality == "CT" else values
    stored = np.clip(np.rint(stored), 0, 4095).astype("<u2")
    base = _phi_header(visit, spec)
    _modality_header(base, spec, grid)
    sop_class = CTImageStorage if spec.modality == "CT" else MRImageStorage
    base.SOPClassUID = sop_class
    base.StudyInstanceUID = spec.study_uid
    base.SeriesInstanceUID = spec.series_uid
    base.FrameOfReferenceUID = uid(spec.seed, spec.study_folder, "frame")
    base.SeriesNumber = spec.series_number
    base.SeriesTime = base.AcquisitionTime = base.ContentTime = visit.study_time
    base.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    base.PixelSpacing = [f"{grid.pixel_spacing:g}", f"{grid.pixel_spacing:g}"]
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.Rows, base.Columns = grid.rows, grid.cols
    base.BitsAllocated, base.BitsStored, base.HighBit = 16, 12, 11
    base.PixelRepresentation = 0

    numbers: dict[int, int] = {}
    for k in range(grid.slices):
        ds = copy.deepcopy(base)
        number = instance_number(spec, grid, k)
        numbers[k] = number
        ds.SOPInstanceUID = uid(spec.seed, spec.study_folder, spec.series_folder, "sop", str(k))
        ds.InstanceNumber = number
        position = grid.position(k)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SliceLocation = f"{position[2]:.4f}"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.PixelData = stored[k].tobytes()
        if spec.rle:
            ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
        dcmwrite(out_dir / f"{number:04d}.dcm", ds, enforce_file_format=True)
    return numbers
