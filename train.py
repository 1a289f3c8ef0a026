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
key, missing data, unusable checkpoint, a run folder in use) print one line and exit with status 2;
faults during a run (SIGTERM/SIGINT/SIGHUP, a full disk, a non-finite loss) print one line and exit with
status 1, and the same command resumes from the rolling checkpoint (see docs/runs.md).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import os
import shutil
import sys
from pathlib import Path

from clipprompt.config import add_project_config, merge_from_file, merge_from_list
from clipprompt.errors import ConfigError, RunFault, RunInterrupted, UserError
from clipprompt.options import OPTIONS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=str, default="", help="path to the datasets folder")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory to resume from")
    parser.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to the trainer config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to the dataset config file")
    parser.add_argument("--trainer", type=str, default="", help="name of the trainer")
    parser.add_argument("--backbone", type=str, default="", help="CLIP model name or checkpoint file")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load the model from this directory for evaluation")
    parser.add_argument("--load-epoch", type=int, help="with --eval-only: epoch of the checkpoint to evaluate (default: the last saved)")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="start again in an output folder that holds a finished run (deletes its checkpoints and result)",
    )
    parser.add_argument("--no-feature-cache", action="store_true", help="compute test-set image features anew (MODEL.FEATURE_CACHE False)")
    parser.add_argument("--protocol", type=str, default="", help="protocol this run belongs to (recorded in result.json)")
    parser.add_argument("--part", type=str, default="", help="part of the protocol (recorded in result.json)")
    parser.add_argument("--tag", type=str, default="", help="name of a variant of the run (recorded in result.json; "
                        "the scripts' TAG and the driver's --tag give it its own folder)")
    parser.add_argument(
        "--skip-finished", action="store_true",
        help="exit 0 when the output folder holds a finished run of this same configuration (the scripts pass it); "
        "a finished run of another configuration is still refused",
    )
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def setup_cfg(args: argparse.Namespace):
    """The resolved config, checked: registered names, each file's trainer section, then every key."""
    from clipprompt.validation import validate_config
    from trainers._dassl import get_cfg_default

    cfg = add_project_config(get_cfg_default())
    files = {}  # what each config file sets
    if args.dataset_config_file:
        files[args.dataset_config_file] = merge_from_file(cfg, args.dataset_config_file)
    if args.config_file:
        files[args.config_file] = merge_from_file(cfg, args.config_file)
    for key, value in (
        ("DATASET.ROOT", args.root),
        ("OUTPUT_DIR", args.output_dir),
        ("RESUME", args.resume),
        ("TRAINER.NAME", args.trainer),
        ("MODEL.BACKBONE.NAME", args.backbone),
    ):
        if value:
            merge_from_list(cfg, [key, value])
    if args.seed >= 0:
        cfg.SEED = args.seed
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    merge_from_list(cfg, args.opts or [])
    if args.no_feature_cache:
        cfg.MODEL.FEATURE_CACHE = False
    cfg.freeze()
    check_registered(cfg)
    check_trainer_sections(cfg.TRAINER.NAME, files)
    validate_config(cfg)
    return cfg


def check_finished_run(cfg, args: argparse.Namespace, remove: bool = True) -> bool:
    """Never overwrite or silently reuse a finished run; an unfinished one is resumed.

    A folder holding a finished run is compared with this command through the run identity
    (`clipprompt.results.identity`, the backbone by its file's sha256): another configuration is
    refused naming the differing keys;
    the same one is refused too, unless `--skip-finished` (the scripts) asks to skip it: True then.
    With `remove` False (before the run lock is held, and on ranks other than 0) only check:
    rank 0 deletes what --overwrite deletes, once it holds the folder's lock."""
    from clipprompt.results import identity
    from clipprompt.results.layout import read_result
    from clipprompt.results.result_file import RESULT_FILE
    from clipprompt.runs.training_state import flat_config
    from trainers.base import MODEL_NAME

    out = Path(cfg.OUTPUT_DIR)
    if not (out / RESULT_FILE).is_file() or args.resume:
        return False
    if args.overwrite:
        if remove:
            (out / RESULT_FILE).unlink(missing_ok=True)
            if not args.eval_only and (out / MODEL_NAME).is_dir():
                shutil.rmtree(out / MODEL_NAME)
            print(f"--overwrite: removed the previous result and checkpoints in {out}")
        return False
    record = read_result(out) or {}
    name = cfg.MODEL.BACKBONE.NAME
    differences = identity.finished_differences(record, identity.identity(flat_config(cfg)), args.tag,
                                                identity.backbone_sha256(name))
    if differences == [] and args.skip_finished:
        print(f"Skipping: {out} already holds a finished run of this configuration (delete the folder to run it again).")
        return True
    if differences:
        raise ConfigError(
            f"{out} already holds a finished run of another configuration: {'; '.join(differences)}. "
            "Name the variant (TAG=NAME for the scripts, --tag NAME for the protocol driver) to give it its own "
            "folder, choose another --output-dir, or pass --overwrite to replace it."
        )
    what = "of this configuration" if differences == [] else "that records no configuration to compare"
    raise ConfigError(
        f"{out} already holds a finished run {what} ({RESULT_FILE}); choose another --output-dir, "
        "or pass --overwrite to start again there (its checkpoints and result are deleted)."
    )


def run_inputs(args: argparse.Namespace) -> dict | None:
    """What this command's configuration is resolved from (`setup_cfg`), less what cannot change the
    run identity (where the data and output live, `identity.MAY_DIFFER` overrides) and the backbone
    (compared by content): a config file by its bytes. None when a config file cannot be read."""
    import hashlib

    from clipprompt.results import identity

    try:
        files = [(role, hashlib.sha256(Path(path).read_bytes()).hexdigest())
                 for role, path in (("dataset", args.dataset_config_file), ("config", args.config_file)) if path]
    except OSError:
        return None
    opts = list(args.opts or [])
    overrides = [[key, value] for key, value in zip(opts[0::2], opts[1::2])
                 if key not in identity.MAY_DIFFER and key != identity.BACKBONE]
    return {"trainer": args.trainer, "config_files": files, "seed": args.seed, "transforms": args.transforms,
            "overrides": overrides, "odd_override": opts[-1] if len(opts) % 2 else None, "tag": args.tag,
            "protocol": args.protocol, "part": args.part, "eval_only": args.eval_only,
            "load_epoch": args.load_epoch, "no_train": args.no_train}


def backbone_name(args: argparse.Namespace, record: dict) -> str | None:
    """The MODEL.BACKBONE.NAME this command resolves to when its inputs are a finished run's (`record`):
    the last override, else --backbone, else what the config files gave that run."""
    from clipprompt.results import identity

    opts = list(args.opts or [])
    given = [value for key, value in zip(opts[0::2], opts[1::2]) if key == identity.BACKBONE]
    return given[-1] if given else args.backbone or record.get("backbone")


def skip_same_inputs(args: argparse.Namespace) -> bool:
    """`--skip-finished` on a finished run whose result.json records this command's inputs
    (`identity.inputs_digest`) and the same backbone content: skip it without torch or Dassl (the
    scripts re-run every finished run of a sweep). Any other case is `check_finished_run`'s."""
    from clipprompt.results import identity
    from clipprompt.results.layout import read_result

    opts = list(args.opts or [])
    outputs = [value for key, value in zip(opts[0::2], opts[1::2]) if key == "OUTPUT_DIR"]
    out = outputs[-1] if outputs else args.output_dir
    if not args.skip_finished or args.resume or args.overwrite or not out:
        return False
    record = read_result(out)
    inputs = run_inputs(args)
    if record is None or inputs is None or record.get("inputs_digest") != identity.inputs_digest(inputs):
        return False
    name = backbone_name(args, record)
    if name is None or identity.backbone_difference(record, name, identity.backbone_sha256(name)):
        return False
    print(f"Skipping: {out} already holds a finished run of this configuration (the same inputs; delete the "
          "folder to run it again).")
    return True


def check_registered(cfg) -> None:
    """One clear line for an unknown trainer (the closest of this project's, not Dassl's own) or dataset."""
    import datasets  # noqa: F401  (registers the CoOp datasets)
    from clipprompt.data.catalog import CATALOG
    from trainers._dassl import DATASET_REGISTRY, TRAINER_REGISTRY
    from trainers.base import ClipTrainer

    trainer = cfg.TRAINER.NAME
    if not cfg.DATASET.NAME:
        names = ", ".join(spec.config for spec in CATALOG.values())
        raise ConfigError(f"no dataset given: add --dataset-config-file configs/datasets/NAME.yaml (NAME: {names}).")
    ours = sorted((name for name in TRAINER_REGISTRY.registered_names()
                   if issubclass(TRAINER_REGISTRY.get(name), ClipTrainer)), key=str.lower)
    if trainer not in ours:  # Dassl's own (ADDA, DANN, ...) cannot train CLIP prompts
        close = closest_names(trainer, ours) if trainer else []
        if not trainer:
            problem = "no trainer given: add --trainer NAME."
        elif trainer in TRAINER_REGISTRY.registered_names():
            problem = f"--trainer {trainer} is one of Dassl's own trainers, which do not train CLIP prompts."
        else:
            problem = f"Unknown trainer {trainer!r} (--trainer){f'; did you mean {close[0]}?' if close else '.'}"
        raise ConfigError(f"{problem} This project's trainers: {', '.join(ours)}.")
    names = DATASET_REGISTRY.registered_names()
    if cfg.DATASET.NAME not in names:
        raise ConfigError(f"Unknown dataset {cfg.DATASET.NAME!r} (DATASET.NAME / --dataset-config-file); "
                          f"registered: {', '.join(sorted(names))}.")


def check_trainer_sections(trainer: str, files: dict) -> None:
    """A config file that sets another trainer's section (SEP's file with --trainer CoOp) is an error:
    the trainer would ignore those keys without a word."""
    if trainer.upper() not in OPTIONS:
        return  # an unknown trainer: check_registered says so
    for path, data in files.items():
        sections = [name for name in (data.get("TRAINER") or {}) if name != "NAME" and name != trainer.upper()]
        if sections:
            owner = sections[0]
            raise ConfigError(
                f"{path} sets TRAINER.{owner}, which --trainer {trainer} ignores (it reads TRAINER.{trainer.upper()}); "
                f"that file is for {trainer_of(owner)}: use --trainer {trainer_of(owner)}, or a config file of "
                f"{trainer} (configs/trainers/{trainer}/)."
            )


def trainer_of(section: str) -> str:
    """The registered trainer whose options node is TRAINER.<section> (its name in upper case)."""
    from trainers._dassl import TRAINER_REGISTRY

    return next((name for name in TRAINER_REGISTRY.registered_names() if name.upper() == section), section)


def closest_names(name: str, names: list[str]) -> list[str]:
    """`names` spelt like `name` but for case, or else the closest ones."""
    same = [known for known in names if known.lower() == name.lower()]
    lowered = {known.lower(): known for known in names}
    return same or [lowered[n] for n in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)]


def cap_workers(cfg):
    """More loader workers than usable cores only adds processes; the count cannot change the result."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cfg.DATALOADER.NUM_WORKERS > cores:
        print(f"DATALOADER.NUM_WORKERS {cfg.DATALOADER.NUM_WORKERS} is more than the {cores} usable cores: using {cores}")
        cfg.defrost()
        cfg.DATALOADER.NUM_WORKERS = cores
        cfg.freeze()
    return cfg


def check_flags(args: argparse.Namespace) -> None:
    """Flags that would be ignored silently: --load-epoch is read by --eval-only alone (as in Dassl)."""
    if args.load_epoch is not None and not args.eval_only:
        raise ConfigError(
            f"--load-epoch {args.load_epoch} applies only with --eval-only (it picks the checkpoint to evaluate); "
            "without --eval-only the run trains, resuming from its latest checkpoint by itself."
        )


def check_resume_folder(args: argparse.Namespace) -> None:
    if args.resume and not Path(args.resume).is_dir():
        raise ConfigError(f"--resume {args.resume}: no such folder (give the output folder of the run to resume).")


def main(argv=None) -> int:
    args = parse_args(argv)
    if skip_same_inputs(args):
        return 0
    from clipprompt.runs import distributed, faults

    faults.reset()
    from clipprompt.runs.log import RunLog
    from clipprompt.runs.stopping import StopRequests

    console, log, stops = sys.stdout, RunLog(sys.stdout), StopRequests().install()
    try:
        sys.stdout = log
        return run(args, log, stops)
    except (UserError, RunFault) as exc:
        log.write_file_only(error_line(exc) + "\n")  # the log ends with the reason the run stopped
        raise
    finally:
        stops.uninstall()
        sys.stdout = console
        log.close()
        distributed.cleanup()


def run(args: argparse.Namespace, log, stops) -> int:
    import torch

    from clipprompt.runs.checkpoint import remove_stale_temporaries
    from clipprompt.runs.distributed import barrier, init_distributed
    from clipprompt.results import identity
    from clipprompt.runs.lock import RunLock

    import trainers  # noqa: F401  (registers the trainers; imports Dassl without its side effects)
    from trainers._dassl import build_trainer, set_random_seed
    from trainers.base import MODEL_NAME

    check_flags(args)
    inputs = run_inputs(args)  # the config files' bytes as they are merged
    cfg = setup_cfg(args)
    try:
        identity.check_tag(args.tag)
    except ValueError as error:
        raise ConfigError(f"--tag: {error}") from None
    check_resume_folder(args)
    dist = init_distributed(use_cuda=torch.cuda.is_available() and cfg.USE_CUDA)
    if not dist.is_main:  # one log: rank 0's (errors still reach stderr)
        os.environ["TQDM_DISABLE"] = "1"
        log.mute()
    cfg = cap_workers(cfg)
    if check_finished_run(cfg, args, remove=False):
        return 0
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    if dist.launched:
        print(f"torchrun: {dist.world_size} process(es), global batch {cfg.DATALOADER.TRAIN_X.BATCH_SIZE}")
    if torch.cuda.is_available() and cfg.USE_CUDA:
        # Deterministic convolution algorithms (CLIP has one conv, the patch embedding: no speed to win),
        # so that a resumed run ends with the same bits as an uninterrupted one.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    print(f"Trainer {cfg.TRAINER.NAME} on {cfg.DATASET.NAME} (output: {cfg.OUTPUT_DIR})")

    trainer = build_trainer(cfg)  # reads and checks data and CLIP: no output folder before it succeeds
    trainer.stops = stops
    run_info = {"protocol": args.protocol, "part": args.part, "tag": args.tag,
                "config_name": Path(args.config_file).stem if args.config_file else None,
                "inputs_digest": identity.inputs_digest(inputs) if inputs is not None else None}
    trainer.run_info = {key: value for key, value in run_info.items() if value}  # recorded in result.json
    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)

    # From here on the run owns its folder: one process at a time (the OS drops the lock if we die).
    lock = RunLock(cfg.OUTPUT_DIR).acquire() if dist.is_main else None
    try:
        if dist.is_main:
            if check_finished_run(cfg, args, remove=True):  # finished meanwhile, by a run of this configuration
                return 0
            for stale in remove_stale_temporaries(cfg.OUTPUT_DIR, Path(cfg.OUTPUT_DIR) / MODEL_NAME):
                print(f"Removed {stale}, left by a run killed while saving")
            log.attach(cfg.OUTPUT_DIR)
        barrier()
        if args.eval_only:
            trainer.test()
        elif not args.no_train:
            trainer.train()
    finally:
        if lock is not None:
            lock.release()
    return 0


def user_message(exc: UserError) -> str:
    """The message alone, also for an error re-raised from a data-loader worker."""
    message = str(exc).strip()
    if "Original Traceback" in message:  # torch's worker re-raise: keep the original last line
        message = message.splitlines()[-1].split(": ", 1)[-1]
    return message


def error_line(exc: Exception) -> str:
    return str(exc) if isinstance(exc, RunInterrupted) else f"error: {user_message(exc)}"


def cli(argv=None) -> int:
    """`main`, with input errors (status 2) and faults during a run (status 1) as one line on stderr."""
    try:
        return main(argv)
    except (UserError, RunFault) as exc:
        print(error_line(exc), file=sys.stderr, flush=True)
        return 2 if isinstance(exc, UserError) else 1
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" while writing {exc.filename}" if exc.filename else ""
        print(f"error: disk full{where} ({exc.strerror}); the last checkpoint is intact; the same command resumes "
              "once there is space.", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
