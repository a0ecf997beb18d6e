"""The bundled real CT series: copied byte for byte, with its TotalSegmentator output and a
German report written from what that segmentation shows.

The series has no SeriesNumber (and empty UIDs), so its report points to images by
InstanceNumber alone ("Bild 270"); each referenced image is the slice where the organ
named in that sentence has its largest area.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from refrad_builder.anatomy.labels import schema
from refrad_builder.demo.reports import KeyImage, cm, ref

STUDY_FOLDER = "real_ct"
SERIES_FOLDER = "series_1"
SEG_NAME = "real_ct_total.nii.gz"
SEG_TASK = "total"


@dataclass(frozen=True)
class RealCT:
    """What was copied and the report written for it."""

    files: tuple[Path, ...]
    segmentation: Path
    report: str
    key_images: tuple[KeyImage, ...]


def _source() -> Path:
    return Path(str(resources.files("refrad_builder.demo.data").joinpath("real_ct")))


def _slice_numbers(paths: list[Path]) -> list[tuple[int, float, Path]]:
    out = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        out.append((int(ds.InstanceNumber), float(ds.ImagePositionPatient[2]), path))
    return sorted(out)


def _report(
    seg: nib.Nifti1Image, z_to_number: dict[float, int]
) -> tuple[str, tuple[KeyImage, ...]]:
    labels = np.asarray(seg.dataobj)
    names = {v: k for k, v in schema().ts_maps[SEG_TASK].items()}
    zooms = seg.header.get_zooms()
    keys: list[KeyImage] = []

    def image(organ: str) -> str:
        mask = labels == names[organ]
        k = int(np.argmax(mask.sum(axis=(0, 1))))
        z = float((seg.affine @ np.array([0.0, 0.0, k, 1.0]))[2])
        number = z_to_number[min(z_to_number, key=lambda zz: abs(zz - z))]
        keys.append(KeyImage(None, number, organ))
        return ref(None, number, "de")

    spleen = labels == names["spleen"]
    spleen_mm = 0.0
    for k in range(spleen.shape[2]):
        idx = np.argwhere(spleen[:, :, k])
        if len(idx):
            extent = (idx.max(axis=0) - idx.min(axis=0) + 1) * np.asarray(zooms[:2])
            spleen_mm = max(spleen_mm, float(extent.max()))
    spleen_size = cm(spleen_mm, "de")
    spleen_word = "grenzwertig groß" if spleen_mm >= 120.0 else "normal groß"
    n = len(z_to_number)
    first, last = min(z_to_number.values()), max(z_to_number.values())

    befund = " ".join(
        [
            f"Beurteilt wird ein Ausschnitt des Oberbauches mit {n} axialen Schichten (Bildnummern {first} bis {last});"
            " die Serie trägt keine Seriennummer, Bildangaben beziehen sich auf die Bildnummer.",
            f"Leber normal konfiguriert, Parenchym homogen und regelrecht kontrastiert, keine fokalen Läsionen {image('liver')}.",
            f"Milz {spleen_word} mit {spleen_size} Durchmesser, homogen {image('spleen')}.",
            f"Magen mäßig gefüllt, Wand nicht verdickt {image('stomach')}.",
            f"Miterfasster Pankreasanteil unauffällig {image('pancreas')}.",
            f"Nebenniere rechts schlank {image('adrenal_gland_right')}.",
            f"Aorta normkalibrig und kontrastiert {image('aorta')}, Vena cava inferior regelrecht.",
            "Keine freie Flüssigkeit. Kein Pleuraerguss in den miterfassten Recessus.",
            f"Keine Fraktur der miterfassten BWK 11 und 12 {image('vertebrae_T12')}, keine suspekten ossären Läsionen.",
        ]
    )
    text = "\n".join(
        [
            "Klinische Angaben:",
            "Onkologische Verlaufskontrolle, PET/CT mit Kontrastmittel.",
            "",
            "Fragestellung:",
            "Tumorstaging, Infektfokus?",
            "",
            "Befund:",
            befund,
            "",
            "Beurteilung:",
            f"1. Milz {spleen_word} ({spleen_size}), sonst unauffälliger Oberbauch im erfassten Ausschnitt.",
            "2. Kein Hinweis auf Lebermetastasen.",
            "",
        ]
    )
    return text, tuple(keys)


def copy_real_ct(dicom_dir: Path, seg_dir: Path) -> RealCT:
    """Copy the real series to ``dicom_dir/real_ct/series_1/0001.dcm..`` (ordered by
    InstanceNumber) and its segmentation to ``seg_dir/real_ct_total.nii.gz``."""
    src = _source()
    slices = _slice_numbers(sorted(p for p in (src / "dicom").iterdir() if p.is_file()))
    target = dicom_dir / STUDY_FOLDER / SERIES_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (_, _, path) in enumerate(slices, start=1):
        out = target / f"{i:04d}.dcm"
        shutil.copyfile(path, out)
        files.append(out)
    seg_dir.mkdir(parents=True, exist_ok=True)
    seg_path = seg_dir / SEG_NAME
    shutil.copyfile(src / "example_seg_dicom.nii.gz", seg_path)
    text, keys = _report(nib.load(seg_path), {z: number for number, z, _ in slices})
    return RealCT(tuple(files), seg_path, text, keys)
