"""A tiny random-weight nnU-Net model in TotalSegmentator's weight folder layout.

The real weights cannot be fetched in tests, so this builds, for one TotalSegmentator task,
folders that TotalSegmentator's own loading code accepts:
``<weights>/<Dataset folder>/<trainer>__<plans>__<configuration>/`` holding ``dataset.json``,
``plans.json`` and ``fold_<f>/checkpoint_final.pth``. Folder names, trainer, plans and folds come
from TotalSegmentator's task table; the network's state dict comes from nnU-Net's own trainer
built from these plans, so a change in either library's expectations breaks the tests that use
it. The weights are random: outputs have the right geometry and label ids, not anatomy.
"""

from __future__ import annotations

import json
from pathlib import Path

# One window covers the small test volumes at 3 mm (fewer sliding-window steps on CPU).
TINY_PATCH = [32, 112, 128]
TINY_FEATURES = [2, 4]
# A stand-in intensity profile for normalisation; any finite numbers do for random weights.
_INTENSITY = {
    "CT": {
        "max": 3000.0,
        "mean": 50.0,
        "median": 40.0,
        "min": -1024.0,
        "percentile_00_5": -1000.0,
        "percentile_99_5": 1500.0,
        "std": 300.0,
    },
    "MR": {
        "max": 1000.0,
        "mean": 200.0,
        "median": 180.0,
        "min": 0.0,
        "percentile_00_5": 0.0,
        "percentile_99_5": 900.0,
        "std": 150.0,
    },
}


def _plans(dataset_name: str, plans_name: str, configuration: str, channel: str) -> dict:
    spacing = [3.0, 3.0, 3.0]
    return {
        "dataset_name": dataset_name,
        "plans_name": plans_name,
        "original_median_spacing_after_transp": spacing,
        "original_median_shape_after_transp": [100, 100, 100],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            configuration: {
                "data_identifier": f"{plans_name}_{configuration}",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": TINY_PATCH,
                "median_image_size_in_voxels": [100, 100, 100],
                "spacing": spacing,
                "normalization_schemes": [
                    "CTNormalization" if channel == "CT" else "ZScoreNormalization"
                ],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {
                    "is_seg": False,
                    "order": 3,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "resampling_fn_seg_kwargs": {
                    "is_seg": True,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "architecture": {
                    "network_class_name": (
                        "dynamic_network_architectures.architectures.unet.PlainConvUNet"
                    ),
                    "arch_kwargs": {
                        "n_stages": len(TINY_FEATURES),
                        "features_per_stage": TINY_FEATURES,
                        "conv_op": "torch.nn.modules.conv.Conv3d",
                        "kernel_sizes": [[3, 3, 3]] * len(TINY_FEATURES),
                        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (len(TINY_FEATURES) - 1),
                        "n_conv_per_stage": [1] * len(TINY_FEATURES),
                        "n_conv_per_stage_decoder": [1] * (len(TINY_FEATURES) - 1),
                        "conv_bias": True,
                        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                        "dropout_op": None,
                        "dropout_op_kwargs": None,
                        "nonlin": "torch.nn.LeakyReLU",
                        "nonlin_kwargs": {"inplace": True},
                    },
                    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
                },
                "batch_dice": True,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": _INTENSITY[channel]},
    }


def build_tiny_weights(
    weights_dir: Path, task: str, fast: bool = True, seed: int = 0
) -> list[Path]:
    """Write a random-weight model for every dataset TotalSegmentator runs for ``task``.

    Returns the model folders written. Only ``nnUNetTrainer`` is named in the checkpoint:
    trainer variants share the architecture, and looking them up imports optional packages.
    """
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS
    from totalsegmentator.map_to_binary import class_map
    from totalsegmentator.python_api import get_task_config

    cfg = get_task_config(task, fast=fast, quiet=True, plans="nnUNetPlans")
    task_ids = cfg["task_id"] if isinstance(cfg["task_id"], list) else [cfg["task_id"]]
    if len(task_ids) != 1:
        raise ValueError(f"{task} (fast={fast}) runs {len(task_ids)} models; build only one")
    channel = "MR" if task.endswith("_mr") else "CT"
    labels = {"background": 0} | {name: i for i, name in sorted(class_map[task].items())}
    torch.manual_seed(seed)
    written = []
    for task_id in task_ids:
        dataset_name = TASK_ID_WEIGHTS_CONFIGS[task_id]["foldername"]
        model_dir = (
            Path(weights_dir)
            / dataset_name
            / convert_trainer_plans_config_to_identifier(cfg["trainer"], cfg["plans"], cfg["model"])
        )
        dataset = {
            "channel_names": {"0": channel},
            "labels": labels,
            "numTraining": 1,
            "file_ending": ".nii.gz",
        }
        plans = _plans(dataset_name, cfg["plans"], cfg["model"], channel)
        manager = PlansManager(plans)
        network = nnUNetTrainer.build_network_architecture(
            manager,
            manager.get_configuration(cfg["model"]),
            1,
            manager.get_label_manager(dataset).num_segmentation_heads,
            enable_deep_supervision=False,
        )
        for fold in cfg["folds"]:
            fold_dir = model_dir / f"fold_{fold}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            torch.save(
                {
                    "network_weights": network.state_dict(),
                    "trainer_name": "nnUNetTrainer",
                    "init_args": {"configuration": cfg["model"], "fold": fold},
                    "inference_allowed_mirroring_axes": None,
                },
                fold_dir / "checkpoint_final.pth",
            )
        (model_dir / "dataset.json").write_text(json.dumps(dataset, indent=1))
        (model_dir / "plans.json").write_text(json.dumps(plans, indent=1))
        written.append(model_dir)
    return written
