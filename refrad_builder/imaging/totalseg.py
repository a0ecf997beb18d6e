"""TotalSegmentator backend: the real ``totalsegmentator()`` call, strictly offline.

One :class:`TotalSegmentatorBackend` lives in each worker of the segment stage (a Ray actor,
on a GPU when Ray gives it one: set ``segment.gpus_per_worker``). It runs task ``total`` on CT
and ``total_mr`` on MR (``segment.totalseg_task_ct`` / ``totalseg_task_mr``), optionally in
fast mode and for a ``roi_subset``, and maps TotalSegmentator's ids to the unified schema.

Offline rules:

* weights come from ``segment.totalseg_weights`` (``$TOTALSEG_WEIGHTS_PATH``); the model
  folders a task needs are taken from TotalSegmentator's own task table and checked before any
  call. Missing weights are never downloaded: :func:`install_help` says how to install them
  offline, and during a call TotalSegmentator's download hook is replaced by a check that
  raises :class:`WeightsMissing` (its download has no timeout and would hang a worker);
* ``$TOTALSEG_HOME_DIR`` (``segment.totalseg_home``, default ``<work>/segment/totalseg_home``)
  holds a ``config.json`` with usage statistics off, written before every call;
* provenance: :meth:`TotalSegmentatorBackend.segmenter_version` names the installed
  TotalSegmentator version, task, mode and a hash of its class map, and the class map must
  equal the schema's snapshot (otherwise ids would be mislabelled: :class:`ClassMapMismatch`).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.config import SegmentConfig, stable_hash
from refrad_builder.engine.io import atomic_write_text

SEGMENTER = "totalsegmentator"
DISTRIBUTION = "TotalSegmentator"
HOME_DIRNAME = "totalseg_home"
CHECKPOINT = "checkpoint_final.pth"
# totalsegmentator()'s default ``plans`` argument; its task table leaves plans unset.
DEFAULT_PLANS = "nnUNetPlans"

DROP_WEIGHTS_MISSING = "totalseg_weights_missing"
DROP_NOT_INSTALLED = "backend_unavailable"
DROP_ROI_NOT_IN_TASK = "roi_subset_not_in_task"

HOME_SETTINGS = {"send_usage_stats": False, "statistics_disclaimer_shown": True}


class TotalSegError(RuntimeError):
    """TotalSegmentator cannot run as configured."""


class NotInstalled(TotalSegError):
    """The ``totalsegmentator`` package is not importable."""


class WeightsMissing(TotalSegError):
    """Model folders a task needs are not under the weights path."""


class ClassMapMismatch(TotalSegError):
    """The installed TotalSegmentator's class map differs from the unified schema's snapshot."""


def installed_version() -> str | None:
    """The installed TotalSegmentator version, or ``None`` (read from metadata, no import)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def task_for_modality(modality: str, cfg: SegmentConfig) -> str | None:
    """The TotalSegmentator task for a modality (CT, MR), or ``None`` for any other."""
    return {"CT": cfg.totalseg_task_ct, "MR": cfg.totalseg_task_mr}.get(modality.upper())


@dataclass(frozen=True)
class ModelFolder:
    """One nnU-Net model TotalSegmentator loads: ``<dataset>/<model>/fold_<f>/``."""

    task_id: int
    dataset: str
    model: str
    folds: tuple[int | str, ...]

    def files(self) -> list[str]:
        """The files nnU-Net reads, relative to the weights path."""
        base = f"{self.dataset}/{self.model}"
        out = [f"{base}/dataset.json", f"{base}/plans.json"]
        out += [f"{base}/fold_{f}/{CHECKPOINT}" for f in self.folds]
        return out


def _task_table():
    try:
        from totalsegmentator.map_tasks_config import (
            DEFAULT_CONFIG,
            TASK_CONFIGS,
            TASK_ID_WEIGHTS_CONFIGS,
        )
    except ImportError as exc:
        raise NotInstalled(
            f"totalsegmentator is not importable ({exc}); install it with "
            "`pip install torch==2.13.0 'totalsegmentator==2.18.*'`"
        ) from exc
    return DEFAULT_CONFIG, TASK_CONFIGS, TASK_ID_WEIGHTS_CONFIGS


def _resolve(task: str, mode: str) -> dict:
    """A task's settings for one sub-mode, as totalsegmentator()'s ``get_task_config`` builds
    them (read from its table without importing torch, so the driver can plan cheaply)."""
    default, tasks, _ = _task_table()
    if task not in tasks:
        raise ValueError(f"TotalSegmentator has no task {task!r}")
    cfg = dict(default)
    raw = tasks[task]
    if "sub_modes" in raw:
        modes = raw["sub_modes"]
        if mode not in modes:
            mode = "fast" if mode in ("fast", "fastest") and "fast" in modes else "default"
        cfg.update(modes[mode])
    else:
        if mode != "default" and raw.get("disallow_fast"):
            raise ValueError(f"TotalSegmentator task {task!r} has no fast mode")
        cfg.update({k: v for k, v in raw.items() if k not in ("disallow_fast", "commercial")})
    return cfg


def _folders(cfg: dict) -> list[ModelFolder]:
    _, _, weights = _task_table()
    ids = cfg["task_id"] if isinstance(cfg["task_id"], list) else [cfg["task_id"]]
    plans = cfg.get("plans") or DEFAULT_PLANS
    out = []
    for task_id in ids:
        info = weights[task_id]
        dataset = info["foldername"]
        if info.get("rel_path"):
            dataset = f"{info['rel_path']}/{dataset}"
        out.append(
            ModelFolder(
                task_id=int(task_id),
                dataset=dataset,
                model=f"{cfg['trainer']}__{plans}__{cfg['model']}",
                folds=tuple(cfg["folds"]),
            )
        )
    return out


def required_models(
    task: str, fast: bool, roi_subset: list[str] | None = None
) -> list[ModelFolder]:
    """Every model folder ``totalsegmentator(task=task, fast=fast, roi_subset=...)`` loads.

    With a ``roi_subset`` TotalSegmentator first crops with a coarse model: the 3 mm one for
    MR tasks, the 6 mm ("fastest") one for CT.
    """
    models = _folders(_resolve(task, "fast" if fast else "default"))
    if roi_subset:
        crop_mode = "fast" if task.endswith("_mr") else "fastest"
        models += [m for m in _folders(_resolve(task, crop_mode)) if m not in models]
    return models


def missing_files(weights_dir: Path | None, models: list[ModelFolder]) -> list[str]:
    """The dataset folders (or, inside present ones, the files) that are missing."""
    if weights_dir is None:
        return [m.dataset for m in models]
    missing = []
    for model in models:
        if not (Path(weights_dir) / model.dataset).is_dir():
            missing.append(model.dataset)
            continue
        missing += [f for f in model.files() if not (Path(weights_dir) / f).is_file()]
    return missing


def weights_signature(weights_dir: Path | None, models: list[ModelFolder]) -> str:
    """Hash of the model files' names, sizes and mtimes ("missing" where absent): installing
    or replacing weights changes it, so the planner reruns the items they affect."""
    entries: list[list] = []
    for model in models:
        for rel in model.files():
            path = Path(weights_dir) / rel if weights_dir is not None else None
            if path is not None and path.is_file():
                st = path.stat()
                entries.append([rel, st.st_size, st.st_mtime_ns])
            else:
                entries.append([rel, "missing"])
    return stable_hash(entries)


def input_signature(cfg: SegmentConfig, modality: str) -> str:
    """What a TotalSegmentator result depends on beyond the volume and the config: the
    installed version and the weight files of the modality's task."""
    version = installed_version()
    task = task_for_modality(modality, cfg)
    if version is None or task is None:
        return stable_hash([SEGMENTER, version, task])
    try:
        models = required_models(task, cfg.totalseg_fast, cfg.totalseg_roi_subset)
    except (ValueError, TotalSegError) as exc:
        return stable_hash([SEGMENTER, version, task, str(exc)])
    return stable_hash([SEGMENTER, version, task, weights_signature(cfg.totalseg_weights, models)])


def _download_task_names(task_ids: set[int]) -> list[str]:
    """``totalseg_download_weights -t`` choices that together fetch ``task_ids``."""
    try:
        from totalsegmentator.bin.totalseg_download_weights import TASK_TO_ID
    except ImportError:
        return []
    left = set(task_ids)
    names: list[str] = []
    while left:
        best = max(
            TASK_TO_ID,
            key=lambda n: (len(left & set(TASK_TO_ID[n])), -len(TASK_TO_ID[n])),
        )
        if not left & set(TASK_TO_ID[best]):
            break
        names.append(best)
        left -= set(TASK_TO_ID[best])
    return names


def install_help(
    task: str,
    fast: bool,
    weights_dir: Path | None,
    models: list[ModelFolder],
    missing: list[str],
) -> str:
    """The fail-fast message: what is missing and how to install the weights offline."""
    version = installed_version() or "2.18.*"
    names = _download_task_names({m.task_id for m in models}) or [task]
    datasets = sorted({m.dataset.split("/")[-1] for m in models})
    where = (
        f"under {weights_dir}"
        if weights_dir is not None
        else "because segment.totalseg_weights is not set"
    )
    target = weights_dir if weights_dir is not None else "<dir>"
    download = "; ".join(f"totalseg_download_weights -t {n}" for n in names)
    return (
        f"TotalSegmentator weights for task {task!r}{' (fast)' if fast else ''} are missing "
        f"{where}: {', '.join(missing)}. Nothing is downloaded at run time. To install them "
        f"offline: on a machine with internet access run `pip install "
        f"TotalSegmentator=={version}` and `TOTALSEG_WEIGHTS_PATH=/tmp/ts_weights {download}`, "
        f"copy the folders {', '.join(datasets)} from /tmp/ts_weights to {target} on this "
        f"machine, and set segment.totalseg_weights={target}."
    )


def prepare_home(home: Path) -> Path:
    """Make ``home/config.json`` say: no usage statistics, disclaimer shown (keeping an
    existing id and licence). Returns the config file."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.json"
    try:
        current = json.loads(path.read_text())
        if not isinstance(current, dict):
            current = {}
    except (OSError, ValueError):
        # Parallel workers may catch TotalSegmentator mid-rewrite: start again from defaults.
        current = {}
    wanted = dict(current)
    wanted.setdefault("totalseg_id", "totalseg_" + secrets.token_hex(4).upper())
    if not isinstance(wanted.get("prediction_counter"), int):
        wanted["prediction_counter"] = 0
    wanted.update(HOME_SETTINGS)
    if wanted != current:
        atomic_write_text(path, json.dumps(wanted, indent=4))
    return path


def class_map_hash(class_map: dict[int, str]) -> str:
    """Short stable hash of a TotalSegmentator class map (id -> name)."""
    return stable_hash({str(k): v for k, v in sorted(class_map.items())})[:12]


class TotalSegmentatorBackend:
    """TotalSegmentator in one worker: checked once by :meth:`setup`, then :meth:`segment`."""

    def __init__(self, cfg: SegmentConfig, work_dir: Path):
        self.cfg = cfg
        self.weights_dir = Path(cfg.totalseg_weights).resolve() if cfg.totalseg_weights else None
        self.home = Path(cfg.totalseg_home or Path(work_dir) / "segment" / HOME_DIRNAME).resolve()
        self.fast = cfg.totalseg_fast
        self.version: str | None = None
        self.device: str | None = None
        self._problems: dict[str, tuple[str, str] | None] = {}
        self._roi: dict[str, list[str] | None] = {}
        self._hash: dict[str, str] = {}

    @property
    def tasks(self) -> list[str]:
        """The configured tasks (CT first)."""
        return list(dict.fromkeys([self.cfg.totalseg_task_ct, self.cfg.totalseg_task_mr]))

    def task_for(self, modality: str) -> str | None:
        """The task for a modality, or ``None``."""
        return task_for_modality(modality, self.cfg)

    def setup(self) -> None:
        """Check everything once per worker.

        Missing package or weights are recorded per task (:meth:`problem` turns them into
        drops). Configuration errors raise: a task outside the unified schema, a class map
        that differs from the schema's snapshot, roi_subset names that no task knows. Cheap
        enough for the driver (torch is imported only to word a missing-weights message).
        """
        self.version = installed_version()
        if self.version is None:
            for task in self.tasks:
                self._problems[task] = (
                    DROP_NOT_INSTALLED,
                    "totalsegmentator is not installed: "
                    "`pip install torch==2.13.0 'totalsegmentator==2.18.*'`",
                )
            return
        try:
            from totalsegmentator.map_to_binary import class_map
        except ImportError as exc:
            raise NotInstalled(f"totalsegmentator {self.version} fails to import: {exc}") from exc
        unified = schema()
        known: set[str] = set()
        for task in self.tasks:
            if task not in unified.ts_maps:
                raise ValueError(
                    f"TotalSegmentator task {task!r} is not in the unified label schema "
                    f"(known: {', '.join(sorted(unified.ts_maps))})"
                )
            installed = {int(k): v for k, v in class_map[task].items()}
            if installed != unified.ts_maps[task]:
                raise ClassMapMismatch(
                    f"totalsegmentator {self.version} class map of {task!r} differs from the "
                    "unified schema's snapshot; refresh it with `python -m refrad_builder.anatomy.labels "
                    "--refresh` (this changes the schema version)"
                )
            self._hash[task] = class_map_hash(installed)
            known |= set(installed.values())
        roi = self.cfg.totalseg_roi_subset
        if roi:
            unknown = sorted(set(roi) - known)
            if unknown:
                raise ValueError(f"segment.totalseg_roi_subset names unknown classes: {unknown}")
        for task in self.tasks:
            names = set(class_map[task].values())
            self._roi[task] = [n for n in roi if n in names] if roi else None
            self._problems[task] = self._check(task)
        prepare_home(self.home)

    def _check(self, task: str) -> tuple[str, str] | None:
        if self._roi.get(task) == []:
            return DROP_ROI_NOT_IN_TASK, f"no roi_subset class belongs to {task!r}"
        models = required_models(task, self.fast, self._roi.get(task))
        missing = missing_files(self.weights_dir, models)
        if missing:
            return DROP_WEIGHTS_MISSING, install_help(
                task, self.fast, self.weights_dir, models, missing
            )
        return None

    @staticmethod
    def _resolve_device(device: str) -> str:
        # "gpu" without one (e.g. an actor Ray gave no GPU) runs on the CPU, as the CLI does.
        if not device.startswith("gpu"):
            return device
        import torch

        return device if torch.cuda.is_available() else "cpu"

    def problem(self, task: str) -> tuple[str, str] | None:
        """(drop reason, detail) when ``task`` cannot run in this worker, else ``None``."""
        if task not in self._problems:
            self.setup()
        return self._problems.get(task)

    def require(self, task: str) -> None:
        """Raise when ``task`` cannot run (:class:`WeightsMissing` for missing weights)."""
        found = self.problem(task)
        if found is None:
            return
        reason, detail = found
        if reason == DROP_WEIGHTS_MISSING:
            raise WeightsMissing(detail)
        if reason == DROP_NOT_INSTALLED:
            raise NotInstalled(detail)
        raise TotalSegError(detail)

    def segmenter_version(self, task: str) -> str:
        """Provenance: version, task, mode, roi_subset and class-map hash."""
        parts = [self.version or "unknown", f"task={task}"]
        if self.fast:
            parts.append("fast")
        if self._roi.get(task):
            parts.append("roi=" + "+".join(self._roi[task]))
        parts.append(f"classmap={self._hash.get(task, 'unknown')}")
        return " ".join(parts)

    def predict(self, image: nib.Nifti1Image, task: str) -> nib.Nifti1Image:
        """TotalSegmentator's multilabel output (its own ids) for an in-memory image."""
        self.require(task)
        from totalsegmentator.python_api import totalsegmentator

        if self.device is None:
            self.device = self._resolve_device(self.cfg.totalseg_device)
        prepare_home(self.home)
        with self._environment(), self._no_download():
            return totalsegmentator(
                image,
                None,
                task=task,
                fast=self.fast,
                roi_subset=self._roi.get(task),
                ml=True,
                # One image per call: nnU-Net's default export pool would spawn six processes
                # (each importing torch) for a single job.
                nr_thr_saving=1,
                device=self.device,
                quiet=True,
                skip_saving=True,
            )

    def segment(self, image: nib.Nifti1Image, task: str) -> np.ndarray:
        """Unified-schema uint8 labels on ``image``'s grid."""
        out = self.predict(image, task)
        shape = tuple(int(s) for s in image.shape[:3])
        if tuple(out.shape[:3]) != shape or not np.allclose(out.affine, image.affine, atol=1e-3):
            raise TotalSegError(
                f"TotalSegmentator returned grid {tuple(out.shape)} instead of the input's {shape}"
            )
        ids = np.asarray(out.dataobj).reshape(shape)
        if ids.dtype.kind == "f":
            ids = np.rint(ids)
        ids = ids.astype(np.int64, copy=False)
        lut = schema().lut(task)
        if ids.size and (ids.min() < 0 or ids.max() >= len(lut)):
            raise TotalSegError(f"TotalSegmentator returned ids outside the {task!r} class map")
        return lut[ids]

    @contextmanager
    def _environment(self) -> Iterator[None]:
        wanted = {"TOTALSEG_HOME_DIR": str(self.home)}
        if self.weights_dir is not None:
            wanted["TOTALSEG_WEIGHTS_PATH"] = str(self.weights_dir)
        saved = {k: os.environ.get(k) for k in ("TOTALSEG_HOME_DIR", "TOTALSEG_WEIGHTS_PATH")}
        os.environ.pop("TOTALSEG_WEIGHTS_PATH", None)
        os.environ.update(wanted)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @contextmanager
    def _no_download(self) -> Iterator[None]:
        from totalsegmentator import python_api

        if not hasattr(python_api, "download_pretrained_weights"):
            raise TotalSegError(
                "totalsegmentator.python_api.download_pretrained_weights is gone: the offline "
                "guard in refrad_builder/imaging/totalseg.py needs updating"
            )
        _, _, weights = _task_table()
        original = python_api.download_pretrained_weights
        weights_dir = self.weights_dir

        def check_only(task_id, *args, **kwargs):
            # The original would download a missing folder (no timeout) and delete legacy
            # folders in the weights path; here it only checks.
            info = weights.get(task_id, {})
            folder = info.get("foldername", str(task_id))
            if info.get("rel_path"):
                folder = f"{info['rel_path']}/{folder}"
            if weights_dir is None or not (weights_dir / folder).is_dir():
                raise WeightsMissing(
                    f"TotalSegmentator asked for {folder} (task id {task_id}), which is not "
                    f"under {weights_dir}; nothing is downloaded at run time"
                )

        python_api.download_pretrained_weights = check_only
        try:
            yield
        finally:
            python_api.download_pretrained_weights = original
