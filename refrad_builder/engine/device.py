"""Where a worker computes, for provenance: its device (``cuda:<n>`` or ``cpu``) and its Ray node."""

from __future__ import annotations

import os


def gpu_device_name() -> str:
    """``cuda:<physical id>`` of the GPU this worker was given: Ray's assignment inside a Ray
    worker, else the first entry of CUDA_VISIBLE_DEVICES, else ``cuda:0``."""
    try:
        import ray

        if ray.is_initialized():
            ids = ray.get_gpu_ids()
            if ids:
                return f"cuda:{ids[0]}"
    except Exception:  # provenance must never fail a worker
        pass
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return f"cuda:{visible}" if visible else "cuda:0"


def ray_node_id() -> str | None:
    """The Ray node id of this worker; None outside Ray (the in-process executor)."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # provenance must never fail a worker
        pass
    return None
