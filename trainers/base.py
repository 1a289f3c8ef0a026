"""Dassl glue shared by every CLIP trainer here: build, train step, evaluation, checkpoints.

A trainer subclasses `ClipTrainer`, is registered with `@TRAINER_REGISTRY.register()`, and
implements `build_custom_model(clip, classnames)` returning a `clipprompt.models.PromptedCLIP`
built with `self.options`: the validated options registered (`clipprompt.options`) for its node
`TRAINER.<CLASS NAME IN UPPER CASE>`. `ClipTrainer` applies the MODEL.* keys itself.
Everything else (precision, optimizer, schedule, caching, checkpoints) lives here once.

Under `torchrun` (see `clipprompt.runs.distributed`) each process trains on its slice of every global
batch and the model's loss runs through DistributedDataParallel; rank 0 alone writes tensorboard,
checkpoints and `result.json`. Every rank evaluates the whole split (identical results, no gather).
A subclass that overrides `forward_backward` should get its loss from `self.train_loss(images,
labels)` (not `self.model.loss`), so that gradients are synchronised across processes, and skip
the step when `self.loss_is_finite(loss)` says no.

Every run is resumable (see `clipprompt.runs.checkpoint` for the files): a rolling checkpoint at each
epoch end and every `TRAIN.CHECKPOINT_MINUTES` within an epoch, holding everything a resume needs
to continue at the next batch bit for bit (`checkpoint_state`). The training data order is
`clipprompt.runs.resumable_data`'s, so a resume replays it from any step. A subclass with more trained
state than its weights (SEP's prototypes) adds it through `training_extras` /
`restore_training_extras`, in the same file.
"""

from __future__ import annotations

import datetime
import math
import os.path as osp
import random
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from clipprompt.runs import cost, faults, feature_cache
from clipprompt.runs.checkpoint import (
    find_checkpoint,
    load_checkpoint,
    load_latest_usable,
    save_progress,
    saved_checkpoints,
    write_state,
)
from clipprompt.backbones.interface import input_resolution
from clipprompt.backbones.loading import load_clip, resolve_checkpoint
from clipprompt.runs.distributed import DistInfo, barrier, mix_seed, shared_seed
from clipprompt.errors import CheckpointError, ConfigError, NonFiniteLoss, RunInterrupted, UserError
from clipprompt.models import PromptedCLIP
from clipprompt.options import OPTIONS
from clipprompt.optim import build_lr_scheduler_from_cfg
from clipprompt.backbones.precision import resolve_precision
from clipprompt.results import identity
from clipprompt.results.result_file import write_result
from clipprompt.runs.resumable_data import ResumableBatchSampler, SeededSamples, quiet_worker, stop_workers
from clipprompt.runs.stopping import NO_STOPS
from clipprompt.runs.training_state import (
    Progress,
    flat_config,
    rng_state,
    same_backbone,
    set_rng_state,
)

from ._dassl import AverageMeter, DataManager, MetricMeter, TrainerX, build_optimizer
from .data import CheckedDatasetWrapper, counted_rows, skipped_in

MODEL_NAME = "model"  # checkpoints go to <output>/model/model.pth.tar-<epoch>
NONFINITE_LIMIT = 5  # non-finite losses in a row that stop a run (fewer are skipped steps, as fp16's)
RESUMABLE_SAMPLERS = ("RandomSampler", "SequentialSampler")


class LossForward(nn.Module):
    """`forward(images, labels)` = `model.loss(images, labels)`: what DistributedDataParallel wraps."""

    def __init__(self, model: PromptedCLIP):
        super().__init__()
        self.model = model

    def forward(self, images, labels):
        return self.model.loss(images, labels)


class ClipTrainer(TrainerX):
    """A frozen CLIP with a method's learnable parts, trained with Dassl's loop."""

    model: PromptedCLIP

    def __init__(self, cfg):
        self.dist = DistInfo.from_env()
        self.train_sampler: ResumableBatchSampler | None = None  # None: Dassl's loader (epoch-end resume only)
        self.ddp_model: DistributedDataParallel | None = None  # set with > 1 process and parameters to train
        self.stops = NO_STOPS  # train.py installs SIGTERM/SIGINT/SIGHUP handling here
        self.resume_step = 0  # steps of the first epoch already done by the run resumed
        self.nonfinite_streak = 0
        self.progress_bar = None  # a tqdm bar per epoch, on a terminal only
        self.epoch_lr = 0.0  # the learning rate of the current epoch's steps (Dassl updates it at epoch ends)
        self.training_status: dict = {}  # training_finished / max_epoch of the evaluated weights
        self.run_info: dict = {}  # protocol, part, config_name, tag: train.py sets them for result.json
        self.unverified: str | None = None  # why the evaluated weights' origin could not be checked
        self._backbone_digest: str | None = None
        self._skip_lines: set[str] = set()  # DATALOADER.SKIP_BAD_IMAGES notices printed (once each)
        self.training_clock = cost.TrainingClock()  # result.json's cost; carried by checkpoints
        super().__init__(cfg)
        cost.reset_peak_gpu_memory(self.device)  # this run's peak, from its model on

    @classmethod
    def config_node_name(cls) -> str:
        return cls.__name__.upper()

    @property
    def trainer_cfg(self):
        return self.cfg.TRAINER[self.config_node_name()]

    def check_cfg(self, cfg) -> None:
        """Validate the method's options (`self.options`) and MODEL.* before any data or weights load."""
        name = self.config_node_name()
        if name not in OPTIONS or name not in cfg.TRAINER:
            raise ConfigError(f"No options for TRAINER.{name}: declare them with @register_options({name!r}).")
        self.options = OPTIONS[name].from_node(cfg.TRAINER[name])
        if cfg.MODEL.get("INIT_WEIGHTS"):
            raise ConfigError(f"MODEL.INIT_WEIGHTS is not supported (got {cfg.MODEL.INIT_WEIGHTS!r}); "
                              "load trained weights with --model-dir, or resume with --resume.")

    def build_custom_model(self, clip, classnames) -> PromptedCLIP:
        raise NotImplementedError

    def build_data_loader(self) -> None:
        """Dassl's loaders, reading images through `CheckedDatasetWrapper`."""
        dm = DataManager(self.cfg, dataset_wrapper=CheckedDatasetWrapper)
        self.train_loader_x, self.train_loader_u = dm.train_loader_x, dm.train_loader_u
        self.val_loader, self.test_loader = dm.val_loader, dm.test_loader
        self.num_classes, self.num_source_domains = dm.num_classes, dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm
        self.train_loader_x = self.training_data().train_loader_x
        self.build_resumable_train_loader()

    def training_data(self) -> DataManager:
        """The data whose training split is trained on: `self.dm`'s (PromptKD trains on more images
        than the classes it evaluates)."""
        return self.dm

    def build_resumable_train_loader(self) -> None:
        """Seeded batches that a resume replays from any step (see clipprompt.runs.resumable_data);
        under torchrun, this rank's slice of each global batch."""
        cfg = self.cfg
        sampler = cfg.DATALOADER.TRAIN_X.SAMPLER
        if sampler not in RESUMABLE_SAMPLERS:
            if self.dist.launched:
                raise ConfigError(
                    f"DATALOADER.TRAIN_X.SAMPLER {sampler!r} is not supported with torchrun; "
                    "multi-process training draws random global batches (RandomSampler)."
                )
            print(f"DATALOADER.TRAIN_X.SAMPLER {sampler}: Dassl's loader; checkpoints and stops at epoch ends only")
            return
        self.data_seed = shared_seed(cfg.SEED)  # the same on every rank, also when SEED is -1
        dataset = self.training_data().train_loader_x.dataset  # Dassl's wrapper with the training transform
        self.train_sampler = ResumableBatchSampler(
            len(dataset),
            cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            seed=self.data_seed,
            shuffle=sampler == "RandomSampler",
        )
        self.train_loader_x = DataLoader(
            SeededSamples(dataset),
            batch_sampler=self.train_sampler,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            pin_memory=self.training_data().train_loader_x.pin_memory,
            worker_init_fn=quiet_worker,
            generator=torch.Generator().manual_seed(self.data_seed),  # leaves the global RNG alone
        )

    def build_model(self) -> None:
        cfg = self.cfg
        if self.dist.launched and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.precision = resolve_precision(self.trainer_cfg.PREC, self.device)
        if self.precision.fallback:
            print(f"Note: {self.precision.fallback}")  # once per run, in the log too
        print(f"Loading CLIP {cfg.MODEL.BACKBONE.NAME} (precision {self.precision.name})")
        clip = load_clip(
            cfg.MODEL.BACKBONE.NAME,
            cache_dir=cfg.MODEL.BACKBONE.CACHE_DIR or None,
            device=self.device,
            dtype=self.precision.weight_dtype,
        )
        check_input_size(cfg.INPUT.SIZE, input_resolution(clip))
        print(f"Building {type(self).__name__} for {len(self.dm.dataset.classnames)} classes")
        self.model = self.build_custom_model(clip, self.dm.dataset.classnames).to(self.device)
        self.model.configure(fused=cfg.MODEL.FUSED_ATTENTION)  # every trainer, without a line of its own
        params = [p for p in self.model.parameters() if p.requires_grad]
        print(f"Trainable parameters: {sum(p.numel() for p in params):,}")
        self.optim = self.build_optimizer(params) if params else None
        adam_eps = getattr(self.options, "adam_eps", None)  # a method's own Adam eps (SEP, TCP); Dassl has no key
        if adam_eps is not None and self.optim is not None and "eps" in self.optim.defaults:  # the Adam family
            for group in self.optim.param_groups:
                group["eps"] = adam_eps
        self.sched = build_lr_scheduler_from_cfg(self.optim, cfg.OPTIM) if params else None
        self.register_model(MODEL_NAME, self.model, self.optim, self.sched)
        self.model_epoch = 0  # epochs of training behind the current weights
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.uses_grad_scaler)
        if self.dist.distributed and params:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(LossForward(self.model), device_ids=device_ids)
        if not self.dist.launched and self.device.type == "cuda" and torch.cuda.device_count() > 1:
            warnings.warn(
                f"{torch.cuda.device_count()} GPUs are visible; `python train.py` uses one. Train on "
                "several with `torchrun --nproc_per_node N train.py ...`, or set CUDA_VISIBLE_DEVICES.",
                stacklevel=2,
            )

    def build_optimizer(self, params):
        """Dassl's optimizer over `params`; a model with several parameter groups (DePT's head)
        gets one group per learning rate, OPTIM.LR times its multiplier."""
        groups = [(group, mult) for group, mult in self.model.parameter_groups() if group]
        if len(groups) == 1 and groups[0][1] == 1.0:
            return build_optimizer(params, self.cfg.OPTIM)
        lr = self.cfg.OPTIM.LR
        for group, mult in groups:
            print(f"Learning rate {lr * mult:g} for {sum(p.numel() for p in group):,} parameters")
        return build_optimizer(None, self.cfg.OPTIM, param_groups=[{"params": g, "lr": lr * m} for g, m in groups])

    # ---- multi-process hooks ---------------------------------------------------------------

    def writes_checkpoints(self) -> bool:
        """Rank 0 alone writes checkpoints; after_epoch's barrier makes the other ranks wait for them."""
        return self.dist.is_main

    def init_writer(self, log_dir):
        if self.dist.is_main:
            super().init_writer(log_dir)

    def before_train(self):
        super().before_train()  # resumes on every rank
        self._last_save = time.monotonic()
        if self.dist.distributed and self.dist.rank > 0:
            # Random augmentation: give each rank its own stream (rank 0 keeps the 1-process one).
            seed = mix_seed(self.data_seed, self.dist.rank, self.start_epoch)
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)

    # ---- the training loop: Dassl's, with resumable steps, rolling checkpoints and clean stops ----

    def train(self):
        with self.stops.deferring():  # a signal stops the run after the current step
            self.before_train()
            self.training_clock.start()
            for self.epoch in range(self.start_epoch, self.max_epoch):
                self.before_epoch()
                self.run_epoch()
                self.after_epoch()
            self.training_clock.stop()
        self.after_train()

    def run_epoch(self):
        self.set_model_mode("train")
        start, self.resume_step = self.resume_step, 0
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(self.epoch, start)
        self.num_batches = len(self.train_loader_x) + start
        if self.num_batches == 0:
            raise UserError(
                f"The training loader yields no step ({len(self.training_data().dataset.train_x)} training images, "
                f"DATALOADER.TRAIN_X.BATCH_SIZE {self.cfg.DATALOADER.TRAIN_X.BATCH_SIZE})."
            )
        losses, batch_time, data_time = MetricMeter(), AverageMeter(), AverageMeter()
        self.epoch_lr, epoch_start = self.get_current_lr(), time.time()  # the rate this epoch's steps use
        self.progress_bar = None
        if on_terminal():  # a bar on the terminal; log.txt keeps the plain lines
            desc = f"epoch {self.epoch + 1}/{self.max_epoch}"
            self.progress_bar = tqdm(total=self.num_batches, initial=start, desc=desc, dynamic_ncols=True, leave=False,
                                     bar_format=BAR_FORMAT)
        end = time.time()
        batches = iter(self.train_loader_x)
        try:
            for self.batch_idx, batch in enumerate(batches, start):
                self.note_skipped(batch, "training uses the next readable image in its place")
                data_time.update(time.time() - end)
                losses.update(self.forward_backward(batch))
                batch_time.update(time.time() - end)
                self.log_step(losses, batch_time, data_time)
                self.after_step()
                end = time.time()
        finally:
            if self.progress_bar is not None:
                self.progress_bar.close()
            stop_workers(batches)
        print(epoch_summary(self.epoch + 1, self.max_epoch, losses, self.epoch_lr, time.time() - epoch_start))

    def log_step(self, losses, batch_time, data_time) -> None:
        """Dassl's progress line, every TRAIN.PRINT_FREQ steps, and the tensorboard scalars."""
        freq = self.cfg.TRAIN.PRINT_FREQ
        if (self.batch_idx + 1) % freq == 0 or self.num_batches < freq:
            remaining = self.num_batches - self.batch_idx - 1 + (self.max_epoch - self.epoch - 1) * self.num_batches
            eta = datetime.timedelta(seconds=int(batch_time.avg * remaining))
            line = (
                f"epoch [{self.epoch + 1}/{self.max_epoch}] batch [{self.batch_idx + 1}/{self.num_batches}] "
                f"time {batch_time.val:.3f} ({batch_time.avg:.3f}) data {data_time.val:.3f} ({data_time.avg:.3f}) "
                f"{losses} lr {self.get_current_lr():.4e} eta {eta}"
            )
            if self.progress_bar is None:
                print(line)
            elif hasattr(sys.stdout, "write_file_only"):
                sys.stdout.write_file_only(line + "\n")
        if self.progress_bar is not None:
            averages = {name: meter.avg for name, meter in losses.meters.items()}
            self.progress_bar.set_postfix_str(bar_postfix(averages), refresh=False)
            self.progress_bar.update(1)
        n_iter = self.epoch * self.num_batches + self.batch_idx
        for name, meter in losses.meters.items():
            self.write_scalar("train/" + name, meter.avg, n_iter)
        self.write_scalar("train/lr", self.get_current_lr(), n_iter)

    def after_step(self) -> None:
        """Stop on a signal (after saving), or save the rolling checkpoint when it is due."""
        faults.after_step(self.epoch + 1, self.batch_idx + 1)
        stop = self.stop_requested()
        if self.batch_idx + 1 == self.num_batches or self.train_sampler is None:
            return  # after_epoch saves (and stops); Dassl's loader cannot resume mid-epoch
        progress = Progress(self.epoch, self.batch_idx + 1)
        minutes = self.cfg.TRAIN.CHECKPOINT_MINUTES
        if stop:
            path = self.save_rolling(progress)
            self.raise_interrupted(progress, path)
        if minutes > 0 and time.monotonic() - self._last_save >= minutes * 60:
            self.save_rolling(progress)

    def stop_requested(self) -> bool:
        """A SIGTERM/SIGINT/SIGHUP received by any rank: every rank stops after the same step."""
        stop = self.stops.requested is not None
        if self.dist.distributed:
            flag = torch.tensor([float(stop)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def raise_interrupted(self, progress: Progress, path) -> None:
        signal = self.stops.requested or "a signal"
        saved = f"checkpoint {path}" if path else "the last checkpoint"
        raise RunInterrupted(
            f"interrupted by {signal} ({progress.describe(self.max_epoch)}); {saved} is kept; "
            "the same command resumes."
        )

    def after_epoch(self):
        cfg = self.cfg
        if not cfg.TEST.NO_TEST and cfg.TEST.FINAL_MODEL == "best_val":
            result = self.test(split="val")
            if result > self.best_result:
                self.best_result = result
                self.save_model(self.epoch, self.output_dir, val_result=result, model_name="model-best.pth.tar")
        path = self.save_rolling(Progress(self.epoch + 1, 0))
        barrier()  # rank 0's checkpoints are written before any rank reads one
        if self.stop_requested() and self.epoch + 1 < self.max_epoch:
            self.raise_interrupted(Progress(self.epoch + 1, 0), path)

    def after_train(self):
        if self.stops.requested:
            self.raise_interrupted(Progress(self.max_epoch, 0), None)
        print(f"Finish training (elapsed: {datetime.timedelta(seconds=round(time.time() - self.time_start))})")
        self.training_status = {"training_finished": True, "max_epoch": self.max_epoch}
        if not self.cfg.TEST.NO_TEST:  # the run's last lines: what was evaluated, the accuracy, result.json
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
                self.training_status = {"training_finished": True, "max_epoch": self.max_epoch}
            else:
                print("Deploy the last-epoch model")
            self.test()
        self.close_writer()

    def train_loss(self, images, labels):
        """`self.model.loss(images, labels)`, through DistributedDataParallel with > 1 process.

        The returned summary is averaged over the ranks, so logs show global-batch values."""
        if self.ddp_model is None:
            return self.model.loss(images, labels)
        loss, summary = self.ddp_model(images, labels)
        if summary:
            values = torch.tensor([float(v) for v in summary.values()], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(values)
            summary = dict(zip(summary, (values / self.dist.world_size).tolist()))
        return loss, summary

    # ---- training and evaluation -------------------------------------------------------

    def forward_backward(self, batch) -> dict[str, float]:
        images, labels = self.parse_batch_train(batch)[:2]
        self.training_clock.images += len(labels)
        with self.precision.autocast():
            loss, summary = self.train_loss(images, labels)
        self.model_zero_grad()
        if faults.forced_nan(self.epoch + 1, self.batch_idx + 1):
            loss = loss * float("nan")
        if self.loss_is_finite(loss):
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def loss_is_finite(self, loss) -> bool:
        """False for a NaN or infinite loss (its step is skipped); NONFINITE_LIMIT in a row stop the run."""
        if bool(torch.isfinite(loss.detach()).all()):
            self.nonfinite_streak = 0
            return True
        self.nonfinite_streak += 1
        where = f"epoch {self.epoch + 1}, step {self.batch_idx + 1}"
        if self.nonfinite_streak >= NONFINITE_LIMIT:
            raise NonFiniteLoss(
                f"the loss is {float(loss.detach().float().mean())} at {where} ({self.nonfinite_streak} steps in a row); "
                "the run stopped, its last good checkpoint is kept and no result was written; "
                "try a lower OPTIM.LR, or TRAINER.<NAME>.PREC fp32."
            )
        print(f"Non-finite loss at {where}: step skipped")
        return False

    def model_inference(self, images):
        with self.precision.autocast():
            return self.model(images).float()

    @torch.no_grad()
    def test(self, split=None):
        """Evaluate on `split` (TEST.SPLIT by default) with text features computed once.

        Class-only text features are computed once for the whole split, not per batch. An
        evaluation of the test split also writes `result.json` to the output folder.
        """
        started = time.monotonic()
        self.set_model_mode("eval")
        self.evaluator.reset()
        split = split or self.cfg.TEST.SPLIT
        loader = self.val_loader if split == "val" and self.val_loader is not None else self.test_loader
        split = "val" if loader is self.val_loader else "test"
        print(f"Evaluate on the *{split}* set")
        with self.precision.autocast(), self.model.cached_text_features():
            cache = self.feature_cache(loader, split)
            if cache is not None:  # frozen image features, computed once across runs
                features, labels, skipped, how = cache.get(lambda: self.image_features(loader, split))
                if how != "not cached":  # (get said why in one line)
                    print(f"Frozen image features {'read from' if how == 'read' else 'written to'} {cache.path}")
                if how == "read":  # the images were not read this time: say again which were left out
                    for path, reason in skipped:
                        self.note_skipped({"skipped": [path], "skip_reason": [reason]}, self.left_out(split))
                step = loader.batch_size or len(labels)
                for i in range(0, len(labels), step):
                    logits = self.model.logits_from_image_features(features[i:i + step].to(self.device))
                    self.evaluator.process(logits.float(), labels[i:i + step].to(self.device))
            else:
                skipped = []
                for batch in tqdm(loader, desc=f"Evaluating ({split})", dynamic_ncols=True, disable=not on_terminal()):
                    skipped += self.note_skipped(batch, self.left_out(split))
                    images, labels = self.parse_batch_test(batch)
                    outputs, keep = self.model_inference(images), counted_rows(batch)
                    if keep is not None:  # an unreadable image's stand-in is not counted
                        outputs, labels = outputs[keep.to(outputs.device)], labels[keep.to(labels.device)]
                    self.evaluator.process(outputs, labels)
        results = self.evaluator.evaluate()
        for key, value in results.items():
            self.write_scalar(f"{split}/{key}", value, self.epoch)
        if skipped:
            print(f"{len(skipped)} unreadable image(s) left out of the {split} results "
                  f"({len(loader.dataset) - len(skipped)} of {len(loader.dataset)} evaluated)")
        if split == "test" and self.dist.is_main:
            self.write_result(results, num_images=len(loader.dataset) - len(skipped), skipped=[p for p, _ in skipped],
                              eval_seconds=time.monotonic() - started)
        return list(results.values())[0]

    @staticmethod
    def left_out(split: str) -> str:
        return f"left out of the {split} results"

    def note_skipped(self, batch, consequence: str) -> list[tuple[str, str]]:
        """Print each unreadable image of a batch once per run, as a log line (not a warning, which a
        filter could hide); return this batch's (path, error class) pairs."""
        found = skipped_in(batch)
        for path, reason in found:
            line = f"Skipped unreadable image {path} ({reason}): {consequence}"
            if line not in self._skip_lines:
                self._skip_lines.add(line)
                print(line)
        return found

    def feature_cache(self, loader, split):
        """The on-disk cache of this test set's frozen image features, or None where not used."""
        cfg = self.cfg
        if not (cfg.MODEL.FEATURE_CACHE and feature_cache.uses_frozen_features(self.model)
                and type(self).model_inference is ClipTrainer.model_inference):
            return None
        key = dict(backbone=self.backbone_digest(), kind=self.model.backbone_kind,
                   encoder=type(self.model.image_encoder).__name__,
                   fused=bool(self.model.image_encoder.fused), dataset=cfg.DATASET.NAME, split=split,
                   items=feature_cache.items_digest(loader.dataset.data_source), transform=repr(loader.dataset.transform),
                   precision=self.precision.name, device=self.device.type)
        return feature_cache.FeatureCache(cfg.MODEL.FEATURE_CACHE_DIR or feature_cache.default_dir(), key)

    def backbone_digest(self) -> str:
        """sha256 of the backbone file (an OpenAI name: its downloaded file), recorded in checkpoints
        and result.json: two CLIPs saved under one file name are told apart."""
        if self._backbone_digest is None:
            cfg = self.cfg
            path = resolve_checkpoint(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.CACHE_DIR or None)
            self._backbone_digest = feature_cache.file_digest(path)
        return self._backbone_digest

    def image_features(self, loader, split):
        """(raw frozen image features, labels, skipped) of a whole split, in the loader's order, without
        the stand-ins of unreadable images; `skipped`: their (path, error class)."""
        features, labels, skipped = [], [], []
        for batch in tqdm(loader, desc=f"Image features ({split})", dynamic_ncols=True, disable=not on_terminal()):
            skipped += self.note_skipped(batch, self.left_out(split))
            images, batch_labels = self.parse_batch_test(batch)
            batch_features, batch_labels, keep = self.model.image_encoder(images).cpu(), batch_labels.cpu(), counted_rows(batch)
            if keep is not None:
                batch_features, batch_labels = batch_features[keep], batch_labels[keep]
            features.append(batch_features)
            labels.append(batch_labels)
        return torch.cat(features), torch.cat(labels), skipped

    def write_result(self, metrics, num_images: int, skipped: list[str] = (), *, eval_seconds: float) -> None:
        cfg = self.cfg
        run = {
            "trainer": type(self).__name__,
            "dataset": cfg.DATASET.NAME,
            "subsample_classes": cfg.DATASET.SUBSAMPLE_CLASSES,
            "num_shots": cfg.DATASET.NUM_SHOTS,  # as asked: it names the run (shots_<K>); shots_used is what the data had
            "shots_used": getattr(self.dm.dataset, "shots_used", None),
            "seed": cfg.SEED,
            "backbone": cfg.MODEL.BACKBONE.NAME,
            "backbone_sha256": self.backbone_digest(),
            "num_classes": self.model.num_classes,
            "num_images": num_images,  # evaluated: unreadable images skipped are not among them
            "skipped_images": len(skipped),
            "skipped_image_files": list(skipped),
            "epoch": self.model_epoch,  # epochs the evaluated weights were trained for
            **self.training_status,  # training_finished and max_epoch, when weights were trained or loaded
            **self.run_info,
            "verified": self.unverified is None,  # false: weights from a checkpoint whose origin is unknown
            "cost": cost.record(self.training_clock, eval_seconds, self.model, self.device),
            # what makes this run this run (clipprompt.results.identity): train.py compares it before reusing a folder
            "identity_excludes": list(identity.MAY_DIFFER),
            "identity": identity.identity(flat_config(cfg)),
        }
        run["identity_digest"] = identity.digest(run["identity"])
        if self.unverified:
            run["unverified_reason"] = self.unverified
        if self.model.num_classes == 1:
            run["one_class"] = True
            print("warning: this evaluation has one class, so its accuracy is 100 % whatever the model predicts "
                  "(recorded as one_class in result.json).")
        path = write_result(cfg.OUTPUT_DIR, metrics, run, cfg.dump())
        shots = f"{cfg.DATASET.NUM_SHOTS} shots" if cfg.DATASET.NUM_SHOTS > 0 else "all images"
        first = next(iter(metrics))
        print(
            f"{cfg.DATASET.NAME}, {cfg.DATASET.SUBSAMPLE_CLASSES} classes ({self.model.num_classes}), {shots}, "
            f"seed {cfg.SEED}: {first} {float(metrics[first]):.2f}"
        )
        print(f"Result written to {path}")

    # ---- checkpoints ---------------------------------------------------------------------

    def checkpoint_state(self, progress: Progress, val_result=None) -> dict:
        """Everything a resume needs to continue bit for bit, and what evaluation checks it against."""
        best = float(self.best_result)
        return {
            "state_dict": self.model.trainable_state_dict(),
            "epoch": progress.epochs,  # finished epochs behind these weights
            "step": progress.steps,  # steps done in the next epoch
            "max_epoch": self.max_epoch,
            "finished": progress.steps == 0 and progress.epochs >= self.max_epoch,
            "optimizer": self.optim.state_dict() if self.optim else None,
            "scheduler": self.sched.state_dict() if self.sched else None,
            "scaler": self.scaler.state_dict(),
            "val_result": val_result,
            "best_result": best if math.isfinite(best) else None,
            "rng": rng_state(),
            "data_seed": getattr(self, "data_seed", None),
            "trainer": type(self).__name__,
            "classnames": list(self.model.classnames),
            "backbone": self.cfg.MODEL.BACKBONE.NAME,
            "backbone_sha256": self.backbone_digest(),
            "config": flat_config(self.cfg),
            "training": self.training_extras(),  # training-only state; evaluation never reads it
            "cost": self.training_clock.state_dict(),  # time and images so far, for result.json's cost
        }

    def training_extras(self) -> dict:
        """Trained state beside the weights that a resume needs (SEP: its prototypes)."""
        return {}

    def restore_training_extras(self, extras: dict, path: str) -> None:
        pass

    def weights_are_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.trainable_state_dict().values())

    def save_rolling(self, progress: Progress, directory: str | None = None) -> str | None:
        """Save the rolling checkpoint of `progress`; older rolling ones go once it is complete."""
        self._last_save = time.monotonic()
        if progress.steps == 0:
            self.model_epoch = progress.epochs
        if not self.writes_checkpoints():
            return None
        if not self.weights_are_finite():
            print(f"Not saving a checkpoint ({progress.describe()}): the weights are not finite")
            return None
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ

        def keep(p: Progress) -> bool:  # the final epoch's and those CHECKPOINT_FREQ asks for
            return p.steps == 0 and (p.epochs >= self.max_epoch or (freq > 0 and p.epochs % freq == 0))

        folder = osp.join(directory or self.output_dir, MODEL_NAME)
        path = save_progress(folder, self.checkpoint_state(progress), progress, keep)
        print(f"Checkpoint saved to {path}")
        return path

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        """Dassl's entry point: `model_name` (model-best.pth.tar) or the epoch-end rolling checkpoint."""
        if not model_name:
            self.save_rolling(Progress(epoch + 1, 0), directory)
            return
        if self.writes_checkpoints():
            path = osp.join(directory, MODEL_NAME, model_name)
            write_state(path, self.checkpoint_state(Progress(epoch + 1, 0), val_result))
            print(f"Checkpoint saved to {path}")

    def check_origin(self, path, state: dict, same_classes: bool = False) -> None:
        """A checkpoint of another trainer or another backbone is refused in one line; with
        `same_classes` (a resume; evaluation of base-trained weights on new classes is legitimate),
        one of other classes too."""
        saved_by = state.get("trainer")
        if saved_by and saved_by != type(self).__name__:
            raise UserError(f"{path} was saved by trainer {saved_by}, not {type(self).__name__}.")
        classnames = state.get("classnames")
        if same_classes and classnames is not None and list(classnames) != list(self.model.classnames):
            raise UserError(
                f"{path} was trained on other classes ({len(classnames)}: {', '.join(classnames[:4])}"
                f"{', ...' if len(classnames) > 4 else ''}) than this run's {self.model.num_classes} "
                "(check the dataset and DATASET.SUBSAMPLE_CLASSES)."
            )
        backbone, digest, name = state.get("backbone"), state.get("backbone_sha256"), self.cfg.MODEL.BACKBONE.NAME
        if digest:  # the file's content decides (a copy under another name is the same CLIP)
            if digest != self.backbone_digest():
                raise UserError(
                    f"{path} was trained with backbone {backbone} (sha256 {digest[:12]}), not {name} "
                    f"(sha256 {self.backbone_digest()[:12]}): another CLIP (MODEL.BACKBONE.NAME)."
                )
        elif backbone and not same_backbone(backbone, name):  # a checkpoint of an earlier release: names only
            raise UserError(f"{path} was trained with backbone {backbone}, not {name} (MODEL.BACKBONE.NAME).")

    def _load(self, path: str, state: dict | None = None, same_classes: bool = False) -> dict:
        state = load_checkpoint(path) if state is None else state
        self.check_origin(path, state, same_classes)
        try:
            self.model.load_trainable_state_dict(state["state_dict"])
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
        self.model_epoch = state["epoch"]
        return state

    def load_model(self, directory, epoch=None):
        """Load `<directory>/model/model.pth.tar-<epoch>`, the latest saved if `epoch` is None.

        The latest of an unfinished training run is refused: name the epoch to evaluate it."""
        if not directory:
            print("No --model-dir given: evaluating the model as built")
            return
        folder = osp.join(directory, MODEL_NAME)
        best = osp.join(folder, "model-best.pth.tar")
        run_finished = self.refuse_unfinished(directory) if epoch is None else None
        if epoch is None and self.cfg.TEST.FINAL_MODEL == "best_val" and osp.isfile(best):
            path = best
        else:
            path = find_checkpoint(folder, epoch)
        state = self._load(path)
        if "config" not in state:
            self.unverified = (f"{path} is a checkpoint of an earlier release, which recorded no configuration: "
                               "its classes, backbone and whether its training finished are unchecked")
            print(f"Notice: {self.unverified}; result.json marks this evaluation \"verified\": false.")
        finished, max_epoch = state.get("finished"), state.get("max_epoch")
        if path == best and run_finished:  # the best epoch's weights are what the finished run deploys
            finished = True
        if finished is not None:
            self.training_status = {"training_finished": bool(finished), "max_epoch": max_epoch}
        unfinished = f" of {max_epoch}, training unfinished" if finished is False else ""
        print(f"Loaded {path} (epoch {state['epoch']}{unfinished})")

    def refuse_unfinished(self, directory) -> bool | None:
        """Evaluating the latest weights of a run whose training did not finish needs --load-epoch.

        Returns whether the run's newest checkpoint says it finished (None where unknown)."""
        saved = saved_checkpoints(osp.join(directory, MODEL_NAME))
        if not saved:
            return None
        progress, path = saved[0]
        try:
            state = load_checkpoint(path)
        except CheckpointError:
            return None  # the loading below names the problem
        if state.get("finished") is not False:
            return state.get("finished")
        epochs = [p.epochs for p, _ in saved if p.steps == 0 and p.epochs > 0]
        hint = f"evaluate epoch {epochs[0]} with --load-epoch {epochs[0]}" if epochs else "no epoch has finished yet"
        raise UserError(
            f"{directory} holds an unfinished training run ({progress.describe(state.get('max_epoch'))}); "
            f"run its training command again to finish it, or {hint}."
        )

    def resume_model_if_exist(self, directory):
        """Continue from the newest usable checkpoint: at the next epoch, or the next step mid-epoch."""
        folder = osp.join(directory, MODEL_NAME)
        found = load_latest_usable(folder)
        if found is None:
            if self.cfg.RESUME:
                raise CheckpointError(f"--resume {directory}: no checkpoint in {folder}.")
            print("No checkpoint found, train from scratch")
            return 0
        path, state = found
        if "config" not in state:
            raise ConfigError(
                f"Cannot resume from {path}: it was written by an earlier release, which recorded no configuration, "
                "so a changed one (learning rate, classes, seed ...) cannot be detected; train again in another "
                f"--output-dir (or delete {folder})."
            )
        differences = identity.differences(state["config"], flat_config(self.cfg))
        if differences:
            raise ConfigError(
                f"Cannot resume from {path}: the run was started with another configuration: "
                f"{'; '.join(differences)}. Use the same values, or another --output-dir for a new run."
            )
        self._load(path, state, same_classes=True)
        if self.optim is not None and state.get("optimizer"):
            self.optim.load_state_dict(state["optimizer"])
        if self.sched is not None and state.get("scheduler"):
            self.sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if state.get("rng"):
            set_rng_state(state["rng"])
        if state.get("data_seed") is not None and self.train_sampler is not None:
            self.data_seed = self.train_sampler.seed = state["data_seed"]
        if state.get("best_result") is not None:
            self.best_result = state["best_result"]
        self.restore_training_extras(state.get("training") or {}, path)
        self.training_clock.load_state_dict(state.get("cost") or {})
        progress = Progress(state["epoch"], state.get("step", 0))
        if progress.steps and self.train_sampler is None:
            raise CheckpointError(f"{path} is a mid-epoch checkpoint, which Dassl's loader for this sampler cannot resume.")
        self.resume_step = progress.steps
        at = f"epoch {progress.epochs + 1}" + (f", step {progress.steps + 1}" if progress.steps else "")
        print(f"Resumed from {path}: continuing at {at}")
        return progress.epochs


# The training bar: steps, elapsed<ETA and the running loss terms. No rate or percentage, and no
# learning rate (the same for a whole epoch; each epoch's summary line says it): their columns go to
# SEP's six terms, so that its bar fits a 100-column terminal.
BAR_FORMAT = "{desc} |{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
# Loss terms under short names in the bar.
SHORT_NAMES = {"text_cons": "txt", "visual_cons": "vis", "logits_kl": "kl", "text_l1": "txt_l1",
               "image_l1": "img_l1", "loss_t2i": "t2i"}


def short_number(value: float) -> str:
    """3 significant digits in as few columns as they take: 4.05, 12.5, 0.102, 7.81e-4."""
    forms = (f"{value:.3g}", f"{value:.2e}")
    return min((form.replace("e-0", "e-").replace("e+0", "e+") for form in forms), key=len)


def bar_postfix(averages: dict[str, float]) -> str:
    """The progress bar's postfix: each running average to 3 significant digits, short names."""
    return " ".join(f"{SHORT_NAMES.get(name, name)}={short_number(value)}" for name, value in averages.items())


def epoch_summary(epoch: int, max_epoch: int, losses, lr: float, seconds: float) -> str:
    """The line that stays on screen (and in log.txt) when an epoch's bar closes."""
    meters = losses.meters
    parts = [f"loss {meters['loss'].avg:.4g}"] if "loss" in meters else []
    if "acc" in meters:
        parts.append(f"acc {meters['acc'].avg:.1f}%")
    parts += [f"lr {lr:.3g}", f"{datetime.timedelta(seconds=round(seconds))}"]
    return f"epoch {epoch}/{max_epoch} done: {', '.join(parts)}"


def on_terminal() -> bool:
    """Progress bars only for a person watching: not in logs, pipes or batch jobs."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def check_input_size(size, resolution: int) -> None:
    if tuple(size) != (resolution, resolution):
        raise ConfigError(
            f"INPUT.SIZE {tuple(size)} does not match the backbone's input resolution {resolution}; "
            f'set INPUT.SIZE "({resolution}, {resolution})".'
        )
