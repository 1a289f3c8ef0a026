"""Dassl glue shared by every CLIP trainer here: build, train step, evaluation, checkpoints.

A trainer subclasses `ClipTrainer`, is registered with `@TRAINER_REGISTRY.register()`, and
implements `build_custom_model(clip, classnames)` returning a `clipprompt.models.PromptedCLIP`.
Its config node is `TRAINER.<CLASS NAME IN UPPER CASE>` and must hold at least `PREC`.
Everything else (precision, optimizer, schedule, caching, checkpoints) lives here once.

Under `torchrun` (see `clipprompt.distributed`) each process trains on its slice of every global
batch and the model's loss runs through DistributedDataParallel; rank 0 alone writes tensorboard,
checkpoints and `result.json`. Every rank evaluates the whole split (identical results, no gather).
A subclass that overrides `forward_backward` should get its loss from `self.train_loss(images,
labels)` (not `self.model.loss`), so that gradients are synchronised across processes.
"""

from __future__ import annotations

import os.path as osp
import random
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from clipprompt.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from clipprompt.fileio import atomic_write
from clipprompt import feature_cache
from clipprompt.clip_loading import load_clip, resolve_checkpoint
from clipprompt.config import check_precision
from clipprompt.distributed import DistInfo, GlobalBatchSampler, barrier, mix_seed, shared_seed
from clipprompt.errors import ConfigError, UserError
from clipprompt.models import PromptedCLIP
from clipprompt.optim import build_lr_scheduler_from_cfg
from clipprompt.precision import resolve_precision
from clipprompt.results import write_result

from ._dassl import DataManager, TrainerX, build_optimizer
from .data import CheckedDatasetWrapper

MODEL_NAME = "model"  # checkpoints go to <output>/model/model.pth.tar-<epoch>


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
        self.train_sampler: GlobalBatchSampler | None = None  # set under torchrun
        self.ddp_model: DistributedDataParallel | None = None  # set with > 1 process and parameters to train
        super().__init__(cfg)
        if not self.dist.is_main:
            # Checkpoints are written by rank 0 alone, whatever a subclass's save_model does;
            # after_epoch's barrier makes the other ranks wait for them.
            self.save_model = self._not_saved_on_this_rank

    @classmethod
    def config_node_name(cls) -> str:
        return cls.__name__.upper()

    @property
    def trainer_cfg(self):
        return self.cfg.TRAINER[self.config_node_name()]

    def check_cfg(self, cfg) -> None:
        name = self.config_node_name()
        if name not in cfg.TRAINER:
            raise ConfigError(f"No TRAINER.{name} config node: register one with @register_trainer_config({name!r}).")
        check_precision(cfg.TRAINER[name].PREC, name)

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
        if self.dist.launched:
            self.build_distributed_train_loader()

    def build_distributed_train_loader(self) -> None:
        """Under torchrun: this rank's slices of seeded global batches (see GlobalBatchSampler)."""
        cfg = self.cfg
        if cfg.DATALOADER.TRAIN_X.SAMPLER != "RandomSampler":
            raise ConfigError(
                f"DATALOADER.TRAIN_X.SAMPLER {cfg.DATALOADER.TRAIN_X.SAMPLER!r} is not supported with torchrun; "
                "multi-process training draws random global batches (RandomSampler)."
            )
        self.data_seed = shared_seed(cfg.SEED)  # the same on every rank, also when SEED is -1
        dataset = self.dm.train_loader_x.dataset  # Dassl's wrapper with the training transform
        self.train_sampler = GlobalBatchSampler(
            len(dataset),
            cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            seed=self.data_seed,
        )
        self.train_loader_x = DataLoader(
            dataset,
            batch_sampler=self.train_sampler,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            pin_memory=self.dm.train_loader_x.pin_memory,
        )

    def build_model(self) -> None:
        cfg = self.cfg
        if self.dist.launched and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.precision = resolve_precision(self.trainer_cfg.PREC, self.device)
        print(f"Loading CLIP {cfg.MODEL.BACKBONE.NAME} (precision {self.precision.name})")
        clip = load_clip(
            cfg.MODEL.BACKBONE.NAME,
            cache_dir=cfg.MODEL.BACKBONE.CACHE_DIR or None,
            device=self.device,
            dtype=self.precision.weight_dtype,
        )
        check_input_size(cfg.INPUT.SIZE, clip.visual.input_resolution)
        print(f"Building {type(self).__name__} for {len(self.dm.dataset.classnames)} classes")
        self.model = self.build_custom_model(clip, self.dm.dataset.classnames).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        print(f"Trainable parameters: {sum(p.numel() for p in params):,}")
        self.optim = build_optimizer(params, cfg.OPTIM) if params else None
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

    # ---- multi-process hooks ---------------------------------------------------------------

    def _not_saved_on_this_rank(self, epoch, *args, **kwargs) -> None:
        self.model_epoch = epoch + 1  # what save_model records, without writing

    def init_writer(self, log_dir):
        if self.dist.is_main:
            super().init_writer(log_dir)

    def before_train(self):
        super().before_train()  # resumes on every rank
        if self.dist.distributed and self.dist.rank > 0:
            # Random augmentation: give each rank its own stream (rank 0 keeps the 1-process one).
            seed = mix_seed(self.data_seed, self.dist.rank, self.start_epoch)
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)

    def run_epoch(self):
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(self.epoch)
        super().run_epoch()

    def after_epoch(self):
        super().after_epoch()
        barrier()  # rank 0's checkpoints are written before any rank reads one

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
        with self.precision.autocast():
            loss, summary = self.train_loss(images, labels)
        self.model_zero_grad()
        self.detect_anomaly(loss)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optim)
        self.scaler.update()
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def model_inference(self, images):
        with self.precision.autocast():
            return self.model(images).float()

    @torch.no_grad()
    def test(self, split=None):
        """Evaluate on `split` (TEST.SPLIT by default) with text features computed once.

        Class-only text features are computed once for the whole split, not per batch. An
        evaluation of the test split also writes `result.json` to the output folder.
        """
        self.set_model_mode("eval")
        self.evaluator.reset()
        split = split or self.cfg.TEST.SPLIT
        loader = self.val_loader if split == "val" and self.val_loader is not None else self.test_loader
        split = "val" if loader is self.val_loader else "test"
        print(f"Evaluate on the *{split}* set")
        with self.precision.autocast(), self.model.cached_text_features():
            cache = self.feature_cache(loader, split)
            if cache is not None:  # frozen image features, computed once across runs
                features, labels, hit = cache.get(lambda: self.image_features(loader, split))
                print(f"Frozen image features {'read from' if hit else 'written to'} {cache.path}")
                step = loader.batch_size or len(labels)
                for i in range(0, len(labels), step):
                    logits = self.model.logits_from_image_features(features[i:i + step].to(self.device))
                    self.evaluator.process(logits.float(), labels[i:i + step].to(self.device))
            else:
                for batch in tqdm(loader, desc=f"Evaluating ({split})", dynamic_ncols=True):
                    images, labels = self.parse_batch_test(batch)
                    self.evaluator.process(self.model_inference(images), labels)
        results = self.evaluator.evaluate()
        for key, value in results.items():
            self.write_scalar(f"{split}/{key}", value, self.epoch)
        if split == "test" and self.dist.is_main:
            self.write_result(results, num_images=len(loader.dataset))
        return list(results.values())[0]

    def feature_cache(self, loader, split):
        """The on-disk cache of this test set's frozen image features, or None where not used."""
        cfg = self.cfg
        if not (cfg.MODEL.FEATURE_CACHE and feature_cache.uses_frozen_features(self.model)
                and type(self).model_inference is ClipTrainer.model_inference):
            return None
        backbone = resolve_checkpoint(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.CACHE_DIR or None)
        key = dict(backbone=feature_cache.file_digest(backbone), encoder=type(self.model.image_encoder).__name__,
                   fused=bool(self.model.image_encoder.fused), dataset=cfg.DATASET.NAME, split=split,
                   items=feature_cache.items_digest(loader.dataset.data_source), transform=repr(loader.dataset.transform),
                   precision=self.precision.name, device=self.device.type)
        return feature_cache.FeatureCache(cfg.MODEL.FEATURE_CACHE_DIR or feature_cache.default_dir(), key)

    def image_features(self, loader, split):
        """(raw frozen image features, labels) of a whole split, in the loader's order."""
        features, labels = [], []
        for batch in tqdm(loader, desc=f"Image features ({split})", dynamic_ncols=True):
            images, batch_labels = self.parse_batch_test(batch)
            features.append(self.model.image_encoder(images).cpu())
            labels.append(batch_labels.cpu())
        return torch.cat(features), torch.cat(labels)

    def write_result(self, metrics, num_images: int) -> None:
        cfg = self.cfg
        run = {
            "trainer": type(self).__name__,
            "dataset": cfg.DATASET.NAME,
            "subsample_classes": cfg.DATASET.SUBSAMPLE_CLASSES,
            "num_shots": cfg.DATASET.NUM_SHOTS,
            "seed": cfg.SEED,
            "backbone": cfg.MODEL.BACKBONE.NAME,
            "num_classes": self.model.num_classes,
            "num_images": num_images,
            "epoch": self.model_epoch,  # epochs the evaluated weights were trained for
        }
        run.update(getattr(self, "run_info", None) or {})  # protocol, part, config_name from train.py
        path = write_result(cfg.OUTPUT_DIR, metrics, run, cfg.dump())
        print(f"Result written to {path}")

    # ---- checkpoints ---------------------------------------------------------------------

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        state = {
            "state_dict": self.model.trainable_state_dict(),
            "epoch": epoch + 1,
            "optimizer": self.optim.state_dict() if self.optim else None,
            "scheduler": self.sched.state_dict() if self.sched else None,
            "scaler": self.scaler.state_dict(),
            "val_result": val_result,
            "rng": rng_state(),
            "trainer": type(self).__name__,
        }
        self.model_epoch = epoch + 1
        folder = osp.join(directory, MODEL_NAME)
        if model_name:  # e.g. model-best.pth.tar
            path = osp.join(folder, model_name)
            atomic_write(path, lambda tmp: torch.save(state, tmp))
        else:
            path = save_checkpoint(folder, state, epoch + 1)
        print(f"Checkpoint saved to {path}")

    def _load(self, path: str) -> dict:
        state = load_checkpoint(path)
        saved_by = state.get("trainer")
        if saved_by and saved_by != type(self).__name__:
            raise UserError(f"{path} was saved by trainer {saved_by}, not {type(self).__name__}.")
        try:
            self.model.load_trainable_state_dict(state["state_dict"])
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
        self.model_epoch = state["epoch"]
        return state

    def load_model(self, directory, epoch=None):
        """Load `<directory>/model/model.pth.tar-<epoch>`, the latest saved if `epoch` is None."""
        if not directory:
            print("No --model-dir given: evaluating the model as built")
            return
        folder = osp.join(directory, MODEL_NAME)
        best = osp.join(folder, "model-best.pth.tar")
        if epoch is None and self.cfg.TEST.FINAL_MODEL == "best_val" and osp.isfile(best):
            path = best
        else:
            path = find_checkpoint(folder, epoch)
        state = self._load(path)
        print(f"Loaded {path} (epoch {state['epoch']})")

    def resume_model_if_exist(self, directory):
        folder = osp.join(directory, MODEL_NAME)
        try:
            path = find_checkpoint(folder)
        except UserError:
            print("No checkpoint found, train from scratch")
            return 0
        state = self._load(path)
        if self.optim is not None and state.get("optimizer"):
            self.optim.load_state_dict(state["optimizer"])
        if self.sched is not None and state.get("scheduler"):
            self.sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if state.get("rng"):
            set_rng_state(state["rng"])
        print(f"Resumed from {path}: continuing at epoch {state['epoch'] + 1}")
        return state["epoch"]


def check_input_size(size, resolution: int) -> None:
    if tuple(size) != (resolution, resolution):
        raise ConfigError(
            f"INPUT.SIZE {tuple(size)} does not match the backbone's input resolution {resolution}; "
            f'set INPUT.SIZE "({resolution}, {resolution})".'
        )


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as plain values and tensors (weights_only-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.copy()), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy(), np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    """random.setstate wants the nested tuples that a save-load round trip may turn into lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
