"""Check a whole resolved config before any work: every bad value is one line that names its key.

`validate_config(cfg)` runs at the end of train.py's `setup_cfg`, before the output folder and
its log exist, so a typo costs a second and leaves nothing behind. It checks

- every Dassl key this project relies on, for type and range, and names (optimizer, schedule,
  sampler, transforms, evaluator ...) against the lists Dassl and this project register
  (`RULES`; docs/errors.md shows them as a table);
- the selected trainer's `TRAINER.<NAME>` node through its registered options class
  (`clipprompt.options.OPTIONS`), and that its context fits CLIP's 77-token text context;
- the files and folders the config names: the dataset folder (and a split file's contents),
  the CLIP backbone (a named model is downloaded now, once, into its cache folder) and the
  output folder (it must be creatable and writable).

Unknown trainer and dataset names are left to train.py's `check_registered` (which runs first and
names this project's trainers and the registered datasets). Dassl's name lists are read lazily, after `import dassl_api` (the project's Dassl
import); without Dassl installed those name checks are skipped (nothing could run anyway).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from yacs.config import CfgNode as CN

from .errors import ConfigError
from .options import OPTIONS, PRECISIONS, _coerce

CLIP_CONTEXT = 77  # tokens of every published CLIP text encoder
PROMPT_OVERHEAD = 4  # start token, at least one class-name token, the full stop, end token

Names = Callable[[], Sequence[Any]]
TWO_VIEW_TRAINERS = ("CoPrompt",)  # trainers that take DATALOADER.K_TRANSFORMS 2: two views of each image


# ---- where the allowed names come from ---------------------------------------------------------


def _dassl(module: str, name: str | None = None) -> Any:
    """`name` from Dassl's `module` (the module itself without a name), or None without Dassl.

    `import dassl_api` first: it imports Dassl through the project's wrapper, which undoes the
    logging side effect of Dassl's import.
    """
    if importlib.util.find_spec("dassl") is None:
        return None
    import dassl_api  # noqa: F401

    found = importlib.import_module(module)
    return found if name is None else getattr(found, name)


def optimizer_names() -> Sequence[str] | None:
    return _dassl("dassl.optim.optimizer", "AVAI_OPTIMS")


def sampler_names() -> Sequence[str] | None:
    """The Sampler classes of Dassl's samplers module (its build_sampler is an if-chain, no list)."""
    samplers = _dassl("dassl.data.samplers")
    if samplers is None:
        return None
    return sorted(
        name for name, value in vars(samplers).items()
        if isinstance(value, type) and issubclass(value, samplers.Sampler) and value is not samplers.Sampler
    )


def transform_names() -> Sequence[str] | None:
    return _dassl("dassl.data.transforms.transforms", "AVAI_CHOICES")


def interpolation_names() -> Sequence[str] | None:
    modes = _dassl("dassl.data.transforms.transforms", "INTERPOLATION_MODES")
    return None if modes is None else list(modes)


def evaluator_names() -> Sequence[str] | None:
    registry = _dassl("dassl.evaluation", "EVALUATOR_REGISTRY")
    return None if registry is None else sorted(registry.registered_names())


def schedule_names() -> Sequence[str]:
    from .optim import SCHEDULES

    return SCHEDULES


def warmup_names() -> Sequence[str]:
    from .optim import WARMUPS

    return WARMUPS


def subsample_names() -> Sequence[str]:
    from .data.subsample import SUBSAMPLE_CHOICES

    return SUBSAMPLE_CHOICES


# ---- the rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What one config key may hold: a type, bounds, allowed names, and when it applies."""

    key: str
    type: Any
    help: str
    min: float | None = None
    max: float | None = None
    above: float | None = None  # exclusive lower bound
    below: float | None = None  # exclusive upper bound
    names: Names | Sequence[Any] | None = None
    length: int | None = None  # for lists: exactly this many items
    when: Callable[[CN], bool] | None = None  # the key only matters when this holds
    optional: bool = False  # the key may be absent (added by another part of the project)
    allowed_text: str = ""  # for docs/errors.md, where a check below says more than the fields

    def allowed(self) -> Sequence[Any] | None:
        return self.names() if callable(self.names) else self.names

    def bounds(self) -> str:
        """The range in words, for docs/errors.md."""
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.above is not None:
            parts.append(f"> {self.above:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        if self.below is not None:
            parts.append(f"< {self.below:g}")
        if self.length is not None:
            parts.append(f"{self.length} items")
        return ", ".join(parts)


def _warmup(cfg: CN) -> bool:
    return cfg.OPTIM.WARMUP_EPOCH > 0


def _sampler_is(name: str) -> Callable[[CN], bool]:
    return lambda cfg: cfg.DATALOADER.TRAIN_X.SAMPLER == name


def _transform(name: str) -> Callable[[CN], bool]:
    return lambda cfg: name in cfg.INPUT.TRANSFORMS


Number = float  # ints are accepted wherever a number is (options._coerce)

RULES: tuple[Rule, ...] = (
    # optimization
    Rule("OPTIM.NAME", str, "optimizer, Dassl's build_optimizer", names=optimizer_names),
    Rule("OPTIM.LR", Number, "learning rate", above=0),
    Rule("OPTIM.MAX_EPOCH", int, "training epochs; 0 would train nothing", min=1),
    Rule("OPTIM.WEIGHT_DECAY", Number, "weight decay", min=0),
    Rule("OPTIM.MOMENTUM", Number, "SGD momentum", min=0),
    Rule("OPTIM.SGD_DAMPNING", Number, "SGD dampening", min=0),
    Rule("OPTIM.SGD_NESTEROV", bool, "SGD Nesterov momentum"),
    Rule("OPTIM.RMSPROP_ALPHA", Number, "RMSprop smoothing", min=0),
    Rule("OPTIM.ADAM_BETA1", Number, "Adam beta1", min=0, below=1),
    Rule("OPTIM.ADAM_BETA2", Number, "Adam beta2", min=0, below=1),
    Rule("OPTIM.STAGED_LR", bool, "per-layer rates need an nn.Module; these trainers pass their learnable "
         "parameters, so it must stay False", names=(False,)),
    Rule("OPTIM.LR_SCHEDULER", str, "learning-rate schedule, clipprompt.optim", names=schedule_names),
    Rule("OPTIM.STEPSIZE", int | list[int], "single_step: epochs per decay, <= 0 for MAX_EPOCH; multi_step: milestone epochs"),
    Rule("OPTIM.GAMMA", Number, "decay factor of the step schedules", above=0),
    Rule("OPTIM.WARMUP_EPOCH", int, "warm-up epochs, <= 0 for none"),
    Rule("OPTIM.WARMUP_TYPE", str, "warm-up kind", names=warmup_names, when=_warmup),
    Rule("OPTIM.WARMUP_CONS_LR", Number, "constant warm-up learning rate", above=0, when=_warmup),
    Rule("OPTIM.WARMUP_MIN_LR", Number, "first learning rate of a linear warm-up", min=0, when=_warmup),
    Rule("OPTIM.WARMUP_RECOUNT", bool, "restart the schedule's count after warm-up"),
    # data loading
    Rule("DATALOADER.TRAIN_X.BATCH_SIZE", int, "training batch, the global batch under torchrun", min=1),
    Rule("DATALOADER.TEST.BATCH_SIZE", int, "evaluation batch", min=1),
    Rule("DATALOADER.NUM_WORKERS", int, "data-loading worker processes; 0 loads in the main process", min=0),
    Rule("DATALOADER.TRAIN_X.SAMPLER", str, "training sampler, Dassl's build_sampler", names=sampler_names),
    Rule("DATALOADER.TEST.SAMPLER", str, "evaluation sampler, Dassl's build_sampler", names=sampler_names),
    Rule("DATALOADER.TRAIN_X.N_INS", int, "RandomClassSampler: images per class in a batch", min=1,
         when=_sampler_is("RandomClassSampler"), allowed_text=">= 1, <= the batch size"),
    Rule("DATALOADER.TRAIN_X.N_DOMAIN", int, "RandomDomainSampler: domains per batch, 0 for all", min=0,
         when=_sampler_is("RandomDomainSampler"), allowed_text=">= 0, divides the batch size"),
    Rule("DATALOADER.K_TRANSFORMS", int, "views per training image; these trainers take one", names=(1,),
         when=lambda cfg: cfg.TRAINER.NAME not in TWO_VIEW_TRAINERS),
    Rule("DATALOADER.K_TRANSFORMS", int, "views per training image for CoPrompt: 2 (the second for frozen CLIP, "
         "the authors'), or 1 (one view for both)", names=(1, 2), when=lambda cfg: cfg.TRAINER.NAME in TWO_VIEW_TRAINERS),
    Rule("DATALOADER.SKIP_BAD_IMAGES", bool, "skip unreadable images instead of stopping"),
    # input
    Rule("INPUT.SIZE", list[int], "image size [height, width], the backbone's input resolution", min=1, length=2),
    Rule("INPUT.INTERPOLATION", str, "resize interpolation", names=interpolation_names),
    Rule("INPUT.TRANSFORMS", list[str], "augmentations, Dassl's transforms", names=transform_names),
    Rule("INPUT.NO_TRANSFORM", bool, "no transform at all; must stay False, CLIP needs tensors", names=(False,)),
    Rule("INPUT.PIXEL_MEAN", list[Number], "per-channel mean of normalize", length=3),
    Rule("INPUT.PIXEL_STD", list[Number], "per-channel std of normalize", above=0, length=3),
    Rule("INPUT.RRCROP_SCALE", list[Number], "random_resized_crop: area range", above=0, max=1, length=2,
         when=_transform("random_resized_crop")),
    Rule("INPUT.CROP_PADDING", int, "random_crop: padding", min=0, when=_transform("random_crop")),
    Rule("INPUT.CUTOUT_N", int, "cutout: holes", min=1, when=_transform("cutout")),
    Rule("INPUT.CUTOUT_LEN", int, "cutout: hole size", min=1, when=_transform("cutout")),
    Rule("INPUT.GN_STD", Number, "gaussian_noise: std", min=0, when=_transform("gaussian_noise")),
    Rule("INPUT.RANDAUGMENT_N", int, "randaugment: operations", min=0, when=_transform("randaugment")),
    Rule("INPUT.RANDAUGMENT_M", int, "randaugment: magnitude", min=0, max=10, when=_transform("randaugment")),
    Rule("INPUT.COLORJITTER_B", Number, "colorjitter: brightness", min=0, when=_transform("colorjitter")),
    Rule("INPUT.COLORJITTER_C", Number, "colorjitter: contrast", min=0, when=_transform("colorjitter")),
    Rule("INPUT.COLORJITTER_S", Number, "colorjitter: saturation", min=0, when=_transform("colorjitter")),
    Rule("INPUT.COLORJITTER_H", Number, "colorjitter: hue", min=0, max=0.5, when=_transform("colorjitter")),
    Rule("INPUT.RGS_P", Number, "randomgrayscale: probability", min=0, max=1, when=_transform("randomgrayscale")),
    Rule("INPUT.GB_P", Number, "gaussian_blur: probability", min=0, max=1, when=_transform("gaussian_blur")),
    Rule("INPUT.GB_K", int, "gaussian_blur: kernel size", min=1, when=_transform("gaussian_blur"),
         allowed_text="odd, >= 1"),
    # dataset
    Rule("DATASET.NAME", str, "dataset, a registered name"),
    Rule("DATASET.ROOT", str, "the data folder, --root"),
    Rule("DATASET.NUM_SHOTS", int, "training images per class, or -1 for all", allowed_text="-1, or >= 1"),
    Rule("DATASET.SUBSAMPLE_CLASSES", str, "base-to-new protocol: all, base or new classes", names=subsample_names),
    # model
    Rule("MODEL.BACKBONE.NAME", str, "CLIP model name, checkpoint file or openclip:<ARCHITECTURE>:<WEIGHTS>"),
    Rule("MODEL.BACKBONE.CACHE_DIR", str, "download folder of named CLIP models"),
    Rule("MODEL.FUSED_ATTENTION", bool, "attention through scaled_dot_product_attention"),
    # training loop and evaluation
    Rule("TRAIN.PRINT_FREQ", int, "print every N batches", min=1),
    Rule("TRAIN.CHECKPOINT_FREQ", int, "save every N epochs, <= 0 for the last only"),
    Rule("TRAIN.CHECKPOINT_MINUTES", Number, "rolling checkpoint within an epoch every N minutes, 0 for epoch ends only",
         min=0, optional=True),
    Rule("TRAIN.COUNT_ITER", str, "what counts an epoch's steps", names=("train_x", "train_u", "smaller_one")),
    Rule("TEST.EVALUATOR", str, "evaluator", names=evaluator_names),
    Rule("TEST.SPLIT", str, "split of the final evaluation", names=("test", "val")),
    Rule("TEST.FINAL_MODEL", str, "weights evaluated after training", names=("last_step", "best_val")),
    Rule("TEST.NO_TEST", bool, "skip the final evaluation"),
    Rule("TEST.PER_CLASS_RESULT", bool, "print per-class accuracy"),
    Rule("TEST.COMPUTE_CMAT", bool, "save the confusion matrix"),
    Rule("SEED", int, "random seed, < 0 for a random one"),
    Rule("USE_CUDA", bool, "use the GPU when there is one"),
    Rule("OUTPUT_DIR", str, "output folder, --output-dir"),
    Rule("RESUME", str, "folder to resume from, --resume"),
)

# Checked in the node of a trainer whose options are not a registered `MethodOptions` class.
GENERIC_TRAINER_RULES: tuple[Rule, ...] = (
    Rule("PREC", str, "numeric precision", names=PRECISIONS),
    Rule("N_CTX", int, "context tokens", min=1, optional=True),
    Rule("N_CTX_V", int, "visual prompt tokens", min=1, optional=True),
    Rule("TEXT_CHUNK", int, "prompts per text-encoder pass, 0 for all at once", min=0, optional=True),
)


# ---- checking --------------------------------------------------------------------------------


def _lookup(cfg: CN, key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, CN) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _as_typed(value: Any, rule: Rule, key: str) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    return _coerce(value, rule.type, key)


def check_value(rule: Rule, value: Any, key: str | None = None) -> Any:
    """Raise ConfigError naming `key` if `value` breaks `rule`; return it typed (ints as floats for numbers)."""
    key = key or rule.key
    value = _as_typed(value, rule, key)
    items = value if isinstance(value, list) else [value]
    if rule.length is not None and len(items) != rule.length:
        raise ConfigError(f"{key} is {value!r}; it must have {rule.length} items.")
    for item in items:
        _check_bounds(item, value, rule, key)
    allowed = rule.allowed()
    if allowed is not None:
        for item in items:
            if item not in allowed:
                shown = ", ".join(map(str, allowed))
                which = f"has {item!r}" if isinstance(value, list) else f"is {item!r}"
                use = "names from" if isinstance(value, list) else "one of"
                raise ConfigError(f"{key} {which}; use {use}: {shown} ({rule.help}).")
    return value


def _check_bounds(item: Any, value: Any, rule: Rule, key: str) -> None:
    if isinstance(item, bool) or not isinstance(item, (int, float)):
        return
    if isinstance(item, float) and not math.isfinite(item):
        raise ConfigError(f"{key} is {value!r}; it must be a finite number.")
    for bound, fails, words in (
        (rule.min, lambda b: item < b, ">="),
        (rule.above, lambda b: not item > b, ">"),
        (rule.max, lambda b: item > b, "<="),
        (rule.below, lambda b: not item < b, "<"),
    ):
        if bound is not None and fails(bound):
            raise ConfigError(f"{key} is {value!r}; it must be {words} {bound:g} ({rule.help}).")


def check_rules(cfg: CN, rules: Sequence[Rule] = RULES, prefix: str = "") -> None:
    """Check every rule that applies to `cfg` (keys relative to `prefix` inside it)."""
    for rule in rules:
        found, value = _lookup(cfg, rule.key)
        if not found:
            if rule.optional:
                continue
            raise ConfigError(f"The config has no key {prefix}{rule.key}; was it built with add_project_config?")
        if rule.when is not None and not rule.when(cfg):
            continue
        check_value(rule, value, prefix + rule.key)


def check_across_keys(cfg: CN) -> None:
    """What one rule's fields cannot say."""
    shots = cfg.DATASET.NUM_SHOTS
    if shots == 0 or shots < -1:
        raise ConfigError(
            f"DATASET.NUM_SHOTS is {shots}; use a number of training images per class >= 1, "
            "or -1 for every training image."
        )
    if "gaussian_blur" in cfg.INPUT.TRANSFORMS and cfg.INPUT.GB_K % 2 == 0:
        raise ConfigError(f"INPUT.GB_K is {cfg.INPUT.GB_K}; gaussian_blur needs an odd kernel size.")
    # Dassl's samplers assert these with a traceback
    train_x = cfg.DATALOADER.TRAIN_X
    if train_x.SAMPLER == "RandomClassSampler" and train_x.N_INS > train_x.BATCH_SIZE:
        raise ConfigError(
            f"DATALOADER.TRAIN_X.N_INS is {train_x.N_INS}; RandomClassSampler needs at most "
            f"DATALOADER.TRAIN_X.BATCH_SIZE ({train_x.BATCH_SIZE}) images per class in a batch."
        )
    if train_x.SAMPLER == "RandomDomainSampler" and train_x.N_DOMAIN > 0 and train_x.BATCH_SIZE % train_x.N_DOMAIN:
        raise ConfigError(
            f"DATALOADER.TRAIN_X.N_DOMAIN is {train_x.N_DOMAIN}; RandomDomainSampler needs it to divide "
            f"DATALOADER.TRAIN_X.BATCH_SIZE ({train_x.BATCH_SIZE})."
        )


def check_trainer_node(cfg: CN) -> None:
    """The selected trainer's options: its registered options class, then the context length."""
    name = str(cfg.TRAINER.NAME).upper()
    if name.endswith("_DEPT") and "DEPT" in cfg.TRAINER:  # DePT on a base method: TRAINER.DEPT, then the base's node
        OPTIONS["DEPT"].from_node(cfg.TRAINER.DEPT)
        name = name[: -len("_DEPT")]
    if not name or name not in cfg.TRAINER or not isinstance(cfg.TRAINER[name], CN):
        return  # an unknown trainer: train.py's check_registered names this project's trainers
    node = cfg.TRAINER[name]
    prefix = f"TRAINER.{name}."
    options = OPTIONS.get(name)
    if options is not None:
        options.from_node(node)
    else:
        check_rules(node, GENERIC_TRAINER_RULES, prefix)
    check_context_fits(node, prefix)


def check_context_fits(node: CN, prefix: str) -> None:
    """N_CTX (or CTX_INIT's token count) must leave room for a class name in CLIP's 77 tokens."""
    limit = CLIP_CONTEXT - PROMPT_OVERHEAD
    ctx_init = node.get("CTX_INIT")
    n_ctx = node.get("N_CTX")
    if isinstance(ctx_init, str) and ctx_init.strip():
        from .backbones._clip import clip_api

        count = len(clip_api._tokenizer.encode(ctx_init))
        if count > limit:
            raise ConfigError(
                f"{prefix}CTX_INIT is {count} tokens long; a prompt also needs the start and end tokens, a class "
                f"name and a full stop within CLIP's {CLIP_CONTEXT} tokens, so at most {limit} context tokens."
            )
    elif isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and n_ctx > limit:
        raise ConfigError(
            f"{prefix}N_CTX is {n_ctx}; a prompt also needs the start and end tokens, a class name and a full "
            f"stop within CLIP's {CLIP_CONTEXT} tokens, so N_CTX can be at most {limit}."
        )


def check_backbone(cfg: CN) -> str:
    """The CLIP checkpoint file, downloading a named model now (before the output folder exists)."""
    from .backbones.loading import resolve_checkpoint

    name = cfg.MODEL.BACKBONE.NAME
    if not str(name).strip():
        raise ConfigError("MODEL.BACKBONE.NAME is empty; give a CLIP model name (e.g. ViT-B/16) or a checkpoint file.")
    path = resolve_checkpoint(name, cfg.MODEL.BACKBONE.CACHE_DIR or None)
    if cfg.TRAINER.NAME == "PromptKD" and "PROMPTKD" in cfg.TRAINER:  # a second CLIP: the teacher's
        from .backbones.loading import teacher_backbone_errors

        with teacher_backbone_errors():
            resolve_checkpoint(cfg.TRAINER.PROMPTKD.TEACHER_BACKBONE, cfg.MODEL.BACKBONE.CACHE_DIR or None)
    return path


def check_dataset(cfg: CN) -> None:
    """The dataset folder under DATASET.ROOT, a split file's contents where that is cheap, and the
    class descriptions a method reads (`TRAINER.<NAME>.DESCRIPTIONS`)."""
    from .data.build import validate_dataset
    from .data.catalog import CATALOG

    if cfg.DATASET.NAME in CATALOG:  # others: train.py's check_registered, or a dataset of your own
        validate_dataset(cfg.DATASET.NAME, cfg.DATASET.ROOT)
        node = cfg.TRAINER.get(str(cfg.TRAINER.NAME).upper())
        if node is not None and node.get("DESCRIPTIONS"):  # a method that reads class descriptions (CoPrompt, HiCroPL)
            from .data.descriptions import require_descriptions

            require_descriptions(cfg.DATASET.NAME, cfg.DATASET.ROOT, node.DESCRIPTIONS)


def check_output_dir(path: str) -> None:
    """The output folder must be a folder we can create and write into (checked without creating it)."""
    if not str(path).strip():
        raise ConfigError("OUTPUT_DIR is empty; give an output folder with --output-dir.")
    target = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(target) and not os.path.isdir(target):
        raise ConfigError(f"--output-dir {path} is a file, not a folder; choose another --output-dir.")
    model = os.path.join(target, "model")  # where checkpoints go
    if os.path.exists(model) and not os.path.isdir(model):
        raise ConfigError(f"--output-dir {path} holds a file named model where checkpoints go; move it away.")
    existing = target
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"--output-dir {path} cannot be created: {existing} is a file, not a folder.")
    for folder in (existing, os.path.join(target, "model")):
        why = _write_error(folder) if os.path.isdir(folder) else None
        if why:
            raise ConfigError(f"--output-dir {path} is not writable: {why}.")


def _write_error(folder: str) -> str | None:
    """Why no file can be created in `folder`, or None. Tried for real: root passes os.access on
    an immutable folder, and a read-only file system only says so when written."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-test"):
            return None
    except OSError as exc:
        try:
            if os.statvfs(folder).f_flag & os.ST_RDONLY:
                return f"{folder} is on a read-only file system"
        except OSError:
            pass
        return f"cannot write in {folder} ({exc.strerror or exc})"


def validate_config(cfg: CN) -> None:
    """Check the resolved config before any work; raise the first problem as one-line ConfigError/UserError."""
    check_rules(cfg)
    check_across_keys(cfg)
    check_trainer_node(cfg)
    check_output_dir(cfg.OUTPUT_DIR)
    check_dataset(cfg)
    check_backbone(cfg)


def _kind(tp: Any) -> str:
    """A type in the words of docs/errors.md: number, list of integers, integer or list of integers."""
    import types
    import typing

    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_kind(arg) for arg in args)
    if typing.get_origin(tp) in (list, tuple):
        return f"list of {_kind(args[0])}s"
    return {int: "integer", float: "number", str: "string", bool: "True/False"}.get(tp, getattr(tp, "__name__", str(tp)))


def describe_rules(rules: Sequence[Rule] = RULES) -> Iterator[tuple[str, str, str, str]]:
    """(key, type, allowed values or range, help) of every rule, for docs/errors.md."""
    for rule in rules:
        names = rule.allowed()
        allowed = rule.allowed_text or (", ".join(map(str, names)) if names is not None else rule.bounds())
        if rule.when is not None:
            allowed = f"{allowed} (when used)" if allowed else "(when used)"
        yield rule.key, _kind(rule.type), allowed, rule.help


def rules_table(rules: Sequence[Rule] = RULES) -> str:
    """The markdown table of docs/errors.md: `python -m clipprompt.validation` prints it."""
    lines = ["| key | type | allowed | what it is |", "|---|---|---|---|"]
    for key, kind, allowed, help in describe_rules(rules):
        lines.append(f"| `{key}` | {kind} | {allowed} | {help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import dassl_api  # noqa: F401  (Dassl, minus its import side effects)

    print(rules_table(), end="")
