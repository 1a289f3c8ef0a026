"""Train or evaluate a CLIP prompt-tuning trainer with Dassl (the CoOp family's command line).

    python train.py --root DATA --trainer CoOp \
        --dataset-config-file configs/datasets/caltech101.yaml \
        --config-file configs/trainers/CoOp/vit_b16_ep50.yaml \
        --output-dir output/coop/caltech101 DATASET.NUM_SHOTS 16

On several GPUs (or CPU processes), launch the same command with torchrun:

    torchrun --nproc_per_node 4 train.py --root DATA --trainer CoOp ...

DATALOADER.TRAIN_X.BATCH_SIZE stays the global batch (split equally over the processes), so N
processes train the same model as one; rank 0 writes the log, checkpoints and result.json.

Trailing `KEY VALUE` pairs override the config. Input errors (unknown trainer, dataset or config
key, missing data, unusable checkpoint) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from clipprompt.config import add_project_config, merge_from_file, merge_from_list
from clipprompt.errors import ConfigError, UserError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=str, default="", help="path to the datasets folder")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory to resume from")
    parser.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to the trainer config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to the dataset config file")
    parser.add_argument("--trainer", type=str, default="", help="name of the trainer")
    parser.add_argument("--backbone", type=str, default="", help="CLIP model name or checkpoint file")
    parser.add_argument("--head", type=str, default="", help="name of the head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load the model from this directory for evaluation")
    parser.add_argument("--load-epoch", type=int, help="epoch of the checkpoint to load (default: the last saved)")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="start again in an output folder that holds a finished run (deletes its checkpoints and result)",
    )
    parser.add_argument("--no-feature-cache", action="store_true", help="compute test-set image features anew (MODEL.FEATURE_CACHE False)")
    parser.add_argument("--protocol", type=str, default="", help="protocol this run belongs to (recorded in result.json)")
    parser.add_argument("--part", type=str, default="", help="part of the protocol (recorded in result.json)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def setup_cfg(args: argparse.Namespace):
    from trainers._dassl import get_cfg_default

    cfg = add_project_config(get_cfg_default())
    if args.dataset_config_file:
        merge_from_file(cfg, args.dataset_config_file)
    if args.config_file:
        merge_from_file(cfg, args.config_file)
    for key, value in (
        ("DATASET.ROOT", args.root),
        ("OUTPUT_DIR", args.output_dir),
        ("RESUME", args.resume),
        ("TRAINER.NAME", args.trainer),
        ("MODEL.BACKBONE.NAME", args.backbone),
        ("MODEL.HEAD.NAME", args.head),
    ):
        if value:
            merge_from_list(cfg, [key, value])
    if args.seed >= 0:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    merge_from_list(cfg, args.opts or [])
    if args.no_feature_cache:
        cfg.MODEL.FEATURE_CACHE = False
    cfg.freeze()
    return cfg


def check_output_dir(cfg, args: argparse.Namespace, remove: bool = True) -> None:
    """Never overwrite a finished run by accident; an unfinished one is resumed by Dassl.

    With `remove` False (ranks other than 0) only check: rank 0 deletes what --overwrite deletes."""
    from clipprompt.results import RESULT_FILE
    from trainers.base import MODEL_NAME

    out = Path(cfg.OUTPUT_DIR)
    if not (out / RESULT_FILE).is_file() or args.resume:
        return
    if not args.overwrite:
        raise ConfigError(
            f"{out} already holds a finished run ({RESULT_FILE}); choose another --output-dir, "
            "or pass --overwrite to start again there (its checkpoints and result are deleted)."
        )
    if not remove:
        return
    (out / RESULT_FILE).unlink()
    if not args.eval_only and (out / MODEL_NAME).is_dir():
        shutil.rmtree(out / MODEL_NAME)
    print(f"--overwrite: removed the previous result and checkpoints in {out}")


def check_registered(cfg) -> None:
    """One clear line for an unknown trainer or dataset, listing the registered ones."""
    from trainers._dassl import DATASET_REGISTRY, TRAINER_REGISTRY

    for kind, name, registry, flag in (
        ("trainer", cfg.TRAINER.NAME, TRAINER_REGISTRY, "--trainer"),
        ("dataset", cfg.DATASET.NAME, DATASET_REGISTRY, "DATASET.NAME / --dataset-config-file"),
    ):
        names = registry.registered_names()
        if name not in names:
            raise ConfigError(f"Unknown {kind} {name!r} ({flag}); registered: {', '.join(sorted(names))}.")


def main(argv=None) -> int:
    args = parse_args(argv)
    from clipprompt import distributed

    try:
        return run(args)
    finally:
        distributed.cleanup()


def run(args: argparse.Namespace) -> int:
    import torch

    from clipprompt.distributed import barrier, init_distributed

    import trainers  # noqa: F401  (registers the trainers; imports Dassl without its side effects)
    import datasets  # noqa: F401  (registers the CoOp datasets)
    from trainers._dassl import build_trainer, set_random_seed, setup_logger

    cfg = setup_cfg(args)
    check_registered(cfg)
    dist = init_distributed(use_cuda=torch.cuda.is_available() and cfg.USE_CUDA)
    if not dist.is_main:  # one log: rank 0's (errors still reach stderr)
        os.environ["TQDM_DISABLE"] = "1"
        sys.stdout = open(os.devnull, "w")
    check_output_dir(cfg, args, remove=dist.is_main)
    barrier()
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    if dist.is_main:
        setup_logger(cfg.OUTPUT_DIR)
    if dist.launched:
        print(f"torchrun: {dist.world_size} process(es), global batch {cfg.DATALOADER.TRAIN_X.BATCH_SIZE}")
    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True
    print(f"Trainer {cfg.TRAINER.NAME} on {cfg.DATASET.NAME} (output: {cfg.OUTPUT_DIR})")

    trainer = build_trainer(cfg)
    trainer.run_info = {"protocol": args.protocol or None, "part": args.part or None,
                        "config_name": Path(args.config_file).stem if args.config_file else None}
    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return 0
    if not args.no_train:
        trainer.train()
    return 0


def user_message(exc: UserError) -> str:
    """The message alone, also for an error re-raised from a data-loader worker."""
    message = str(exc).strip()
    if "Original Traceback" in message:  # torch's worker re-raise: keep the original last line
        message = message.splitlines()[-1].split(": ", 1)[-1]
    return message


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        sys.exit(2)
