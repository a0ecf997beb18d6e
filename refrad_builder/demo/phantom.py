"""A body phantom of the lower chest and upper abdomen with known organ masks.

Organs are ellipsoids and elliptic cylinders placed in patient coordinates (DICOM LPS, mm:
+x patient left, +y posterior, +z superior) relative to an anatomical origin at the centre
of the body at the level of T12. Labels carry TotalSegmentator class names: the fine
``total`` ones (lobes, single vertebrae, kidney cysts) plus ``total_mr``'s
intervertebral_discs; :func:`task_labels` maps them to ``total`` or ``total_mr`` ids (a class
the task lacks becomes background), so the segmentation written beside the images is the
exact ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from refrad_builder.anatomy.labels import schema

FINDING_KINDS = ("liver_lesion", "kidney_cyst", "splenomegaly", "aortic_ectasia")

# Mean CT numbers (HU) and MR signal (arbitrary units, T2-weighted look) per tissue.
CT_HU = {
    "air": -1000.0,
    "fat": -100.0,
    "wall": 45.0,
    "mesentery": -60.0,
    "lung": -850.0,
    "heart": 130.0,
    "liver": 60.0,
    "liver_lesion": 20.0,
    "gallbladder": 8.0,
    "stomach": 25.0,
    "spleen": 50.0,
    "pancreas": 45.0,
    "kidney": 30.0,
    "cyst": 5.0,
    "artery": 200.0,
    "vein": 150.0,
    "muscle": 50.0,
    "bone": 450.0,
    "cortex": 800.0,
    "disc": 80.0,
    "cord": 35.0,
}
MR_SIGNAL = {
    "air": 0.0,
    "fat": 700.0,
    "wall": 260.0,
    "mesentery": 600.0,
    "lung": 30.0,
    "heart": 220.0,
    "liver": 320.0,
    "liver_lesion": 1300.0,
    "gallbladder": 1500.0,
    "stomach": 1100.0,
    "spleen": 560.0,
    "pancreas": 420.0,
    "kidney": 650.0,
    "cyst": 1450.0,
    "artery": 60.0,
    "vein": 90.0,
    "muscle": 240.0,
    "bone": 430.0,
    "cortex": 80.0,
    "disc": 900.0,
    "cord": 750.0,
}
TISSUES = tuple(CT_HU)

# (class name, z range relative to the origin, mm); the gaps between them are discs.
VERTEBRAE = (
    ("vertebrae_T11", 21.0, 50.0),
    ("vertebrae_T12", -13.0, 16.0),
    ("vertebrae_L1", -47.0, -18.0),
)


@dataclass(frozen=True)
class Grid:
    """An axial stack: voxel (column i, row j, slice k) maps to LPS mm; slice 0 is inferior."""

    cols: int
    rows: int
    slices: int
    pixel_spacing: float
    slice_spacing: float
    origin: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (slices, rows, columns), the order DICOM pixel data stacks in."""
        return (self.slices, self.rows, self.cols)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LPS coordinates of the voxel centres along x (columns), y (rows) and z (slices)."""
        x = self.origin[0] + self.pixel_spacing * np.arange(self.cols)
        y = self.origin[1] + self.pixel_spacing * np.arange(self.rows)
        z = self.origin[2] + self.slice_spacing * np.arange(self.slices)
        return x, y, z

    def position(self, k: int) -> tuple[float, float, float]:
        """ImagePositionPatient of slice ``k`` (centre of its first pixel)."""
        return (self.origin[0], self.origin[1], self.origin[2] + self.slice_spacing * k)

    def lps_affine(self) -> np.ndarray:
        """4x4 matrix from voxel (i, j, k) to LPS mm."""
        aff = np.diag([self.pixel_spacing, self.pixel_spacing, self.slice_spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    def ras_affine(self) -> np.ndarray:
        """4x4 matrix from voxel (i, j, k) to RAS mm (the NIfTI convention)."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.lps_affine()


@dataclass(frozen=True)
class Finding:
    """One abnormality built into the phantom; ``size_mm`` is the diameter a report quotes."""

    kind: str
    size_mm: float
    side: str | None = None
    center: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class Anatomy:
    """A patient's build: body scale in-plane, where the anatomical origin lies, findings."""

    scale: float
    origin: tuple[float, float, float]
    findings: tuple[Finding, ...] = ()

    def finding(self, kind: str) -> Finding | None:
        """The finding of ``kind``, if the patient has it."""
        return next((f for f in self.findings if f.kind == kind), None)


@dataclass
class Phantom:
    """Label names and tissues per voxel, arrays shaped (slices, rows, columns)."""

    grid: Grid
    anatomy: Anatomy
    names: list[str]
    labels: np.ndarray
    tissue: np.ndarray
    finding_masks: dict[str, np.ndarray] = field(default_factory=dict)

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of one ``total`` class name (empty if absent)."""
        if name not in self.names:
            return np.zeros(self.grid.shape, dtype=bool)
        return self.labels == self.names.index(name) + 1

    def best_slice(self, mask: np.ndarray) -> int:
        """Slice index where ``mask`` has the largest area."""
        area = mask.reshape(mask.shape[0], -1).sum(axis=1)
        if not area.any():
            raise ValueError("mask is empty")
        return int(np.argmax(area))

    def intensities(self, modality: str, rng: np.random.Generator) -> np.ndarray:
        """CT numbers (HU) or MR signal with noise, float32."""
        table = CT_HU if modality == "CT" else MR_SIGNAL
        lut = np.array([table[t] for t in TISSUES], dtype=np.float32)
        values = lut[self.tissue]
        sigma = 12.0 if modality == "CT" else 18.0
        values = values + rng.normal(0.0, sigma, size=values.shape).astype(np.float32)
        if modality == "MR":
            values = np.abs(values)
        return values


def _mr_name(name: str) -> str:
    if name.startswith("lung_") and name.endswith("_left"):
        return "lung_left"
    if name.startswith("lung_") and name.endswith("_right"):
        return "lung_right"
    if name.startswith("vertebrae_"):
        return "vertebrae"
    if name.startswith("kidney_cyst_"):
        return "kidney_" + name.rsplit("_", 1)[1]
    return name


def task_name(name: str, task: str) -> str | None:
    """The class name ``name`` carries in TotalSegmentator ``task`` (None: not a class there)."""
    mapped = _mr_name(name) if task == "total_mr" else name
    return mapped if mapped in set(schema().ts_maps[task].values()) else None


def task_labels(phantom: Phantom, task: str) -> np.ndarray:
    """The phantom's label volume in TotalSegmentator ``task`` ids, uint8 (slices, rows, cols)."""
    by_name = {v: k for k, v in schema().ts_maps[task].items()}
    lut = np.zeros(len(phantom.names) + 1, dtype=np.uint8)
    for code, name in enumerate(phantom.names, start=1):
        mapped = task_name(name, task)
        lut[code] = by_name[mapped] if mapped else 0
    return lut[phantom.labels]


class _Painter:
    """Paints tissues and labels in order; later parts cover earlier ones."""

    def __init__(self, grid: Grid, anatomy: Anatomy):
        x, y, z = grid.axes()
        ox, oy, oz = anatomy.origin
        s = anatomy.scale
        self.scale = s
        # Relative coordinates with the in-plane scale divided out, so one set of organ
        # positions fits every body size.
        self.x = ((x - ox) / s)[None, None, :]
        self.y = ((y - oy) / s)[None, :, None]
        self.z = (z - oz)[:, None, None]
        self.names: list[str] = []
        self.labels = np.zeros(grid.shape, dtype=np.uint8)
        self.tissue = np.zeros(grid.shape, dtype=np.uint8)
        self.inner = self.cylinder((0.0, -5.0), (150.0, 105.0))

    def ellipsoid(
        self,
        c: tuple[float, float, float],
        r: tuple[float, float, float],
        angle_deg: float = 0.0,
    ) -> np.ndarray:
        """Ellipsoid whose first axis is turned by ``angle_deg`` in the axial plane."""
        a = np.deg2rad(angle_deg)
        dx, dy = self.x - c[0], self.y - c[1]
        u = dx * np.cos(a) + dy * np.sin(a)
        v = -dx * np.sin(a) + dy * np.cos(a)
        return ((u / r[0]) ** 2 + (v / r[1]) ** 2 + ((self.z - c[2]) / r[2]) ** 2) <= 1.0

    def sphere(self, c: tuple[float, float, float], diameter_mm: float) -> np.ndarray:
        # In-plane coordinates are scaled; undo it so the diameter is physical.
        r = diameter_mm / 2.0
        return self.ellipsoid(c, (r / self.scale, r / self.scale, r))

    def cylinder(
        self,
        c: tuple[float, float],
        r: tuple[float, float],
        z_range: tuple[float, float] = (-1e9, 1e9),
    ) -> np.ndarray:
        disc = (((self.x - c[0]) / r[0]) ** 2 + ((self.y - c[1]) / r[1]) ** 2) <= 1.0
        slab = (self.z >= z_range[0]) & (self.z <= z_range[1])
        return disc & slab

    def paint(self, mask: np.ndarray, tissue: str, label: str | None) -> None:
        mask = np.broadcast_to(mask, self.labels.shape)
        self.tissue[mask] = TISSUES.index(tissue)
        if label is None:
            self.labels[mask] = 0
            return
        if label not in self.names:
            self.names.append(label)
        self.labels[mask] = self.names.index(label) + 1


def build_phantom(grid: Grid, anatomy: Anatomy) -> Phantom:
    """Paint the phantom for one patient on ``grid``."""
    p = _Painter(grid, anatomy)
    inner = p.inner
    p.paint(p.cylinder((0.0, 0.0), (165.0, 125.0)), "fat", None)
    p.paint(p.cylinder((0.0, -3.0), (160.0, 115.0)), "wall", None)
    p.paint(inner, "mesentery", None)

    # Oblique fissure: the lower lobes fill the bases and give way anteriorly further up.
    fissure_y = -80.0 + 2.2 * (p.z - 10.0)
    lower = p.y > fissure_y
    for side, sx in (("right", -1.0), ("left", 1.0)):
        lung = p.ellipsoid((82.0 * sx, 15.0, 62.0), (60.0, 80.0, 70.0)) & inner
        p.paint(lung & lower, "lung", f"lung_lower_lobe_{side}")
        if side == "right":
            p.paint(lung & ~lower & (p.z < 40.0), "lung", "lung_middle_lobe_right")
            p.paint(lung & ~lower & (p.z >= 40.0), "lung", "lung_upper_lobe_right")
        else:
            p.paint(lung & ~lower, "lung", "lung_upper_lobe_left")

    p.paint(p.ellipsoid((18.0, -40.0, 62.0), (62.0, 50.0, 48.0)) & inner, "heart", "heart")
    liver = p.ellipsoid((-62.0, 5.0, -8.0), (82.0, 85.0, 52.0)) & inner
    p.paint(liver, "liver", "liver")
    p.paint(p.ellipsoid((-45.0, -52.0, -22.0), (14.0, 16.0, 24.0)), "gallbladder", "gallbladder")
    p.paint(p.ellipsoid((58.0, -38.0, 8.0), (40.0, 36.0, 34.0)) & inner, "stomach", "stomach")

    # The spleen lies obliquely along the left posterolateral wall.
    f = 1.4 if anatomy.finding("splenomegaly") else 1.0
    spleen = p.ellipsoid((100.0, 20.0, 8.0), (52.0 * f, 22.0 * f, 38.0 * f), -60.0) & inner
    p.paint(spleen, "spleen", "spleen")
    p.paint(p.ellipsoid((15.0, -5.0, -22.0), (55.0, 11.0, 10.0)), "pancreas", "pancreas")
    for side, sx, cz in (("right", -1.0, -34.0), ("left", 1.0, -28.0)):
        p.paint(p.ellipsoid((72.0 * sx, 52.0, cz), (26.0, 26.0, 42.0)), "kidney", f"kidney_{side}")

    finding_masks: dict[str, np.ndarray] = {}
    cyst = anatomy.finding("kidney_cyst")
    if cyst is not None and cyst.center is not None:
        m = p.sphere(cyst.center, cyst.size_mm) & (
            p.labels == p.names.index(f"kidney_{cyst.side}") + 1
        )
        p.paint(m, "cyst", f"kidney_cyst_{cyst.side}")
        finding_masks["kidney_cyst"] = np.broadcast_to(m, grid.shape).copy()
    lesion = anatomy.finding("liver_lesion")
    if lesion is not None and lesion.center is not None:
        m = p.sphere(lesion.center, lesion.size_mm) & (p.labels == p.names.index("liver") + 1)
        p.paint(m, "liver_lesion", "liver")
        finding_masks["liver_lesion"] = np.broadcast_to(m, grid.shape).copy()

    ectasia = anatomy.finding("aortic_ectasia")
    aorta_r = (ectasia.size_mm / 2.0 if ectasia else 22.0 / 2.0) / anatomy.scale
    p.paint(p.cylinder((14.0, 20.0), (aorta_r, aorta_r)), "artery", "aorta")
    p.paint(p.cylinder((-24.0, 12.0), (11.0, 11.0), (-1e9, 30.0)), "vein", "inferior_vena_cava")
    for sx, name in ((1.0, "autochthon_left"), (-1.0, "autochthon_right")):
        p.paint(p.cylinder((33.0 * sx, 84.0), (20.0, 14.0)), "muscle", name)

    p.paint(p.cylinder((0.0, 45.0), (20.0, 17.0)), "disc", "intervertebral_discs")
    for name, z0, z1 in VERTEBRAE:
        p.paint(p.cylinder((0.0, 45.0), (20.0, 17.0), (z0, z1)), "bone", name)
        p.paint(p.cylinder((0.0, 71.0), (15.0, 12.0), (z0, z1)), "cortex", name)
    p.paint(p.cylinder((0.0, 68.0), (6.0, 6.0)), "cord", "spinal_cord")

    return Phantom(
        grid=grid,
        anatomy=anatomy,
        names=p.names,
        labels=p.labels,
        tissue=p.tissue,
        finding_masks=finding_masks,
    )
