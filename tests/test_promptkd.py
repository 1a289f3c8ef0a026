"""PromptKD (a prompted student distilled from a frozen PromptSRC teacher) on tiny CLIPs."""

import json

import pytest
import torch
import torch.nn.functional as F

from clipprompt.backbones.random_clip import ClipShape, build_random_clip
from clipprompt.errors import UserError
from clipprompt.models import PromptKD, PromptKDOptions, PromptSRC, PromptSRCOptions
from clipprompt.models.base import normalize
from clipprompt.options import OPTIONS
from clipprompt.models.promptkd import build_teacher, teacher_prompts
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import TINY_OVERRIDES, run_base2new_scripts, run_script, train_in_process

from model_checks import fast_and_slow, learned_parameters, train_steps

# A teacher wider than the student (embedding 48 against 32, 4 vision blocks), as ViT-L/14 is to ViT-B/16.
TEACHER_SHAPE = ClipShape(48, 32, 4, 128, 8, 77, 49408, 128, 2, 3)
ALL = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
BASE, NEW = ALL[:3], ALL[3:]
LABELS = torch.tensor([0, 1, 2, 0])
LEARNED = {"visual_ctx", "deep_visual.0"} | {f"projector.{i}.{k}" for i in (0, 1, 3) for k in ("weight", "bias")}
STATS = {"projector.1.running_mean", "projector.1.running_var", "projector.1.num_batches_tracked"}


def trained_promptsrc(classnames=BASE, seed=1):
    """A PromptSRC teacher on the wider CLIP with prompts moved off their start."""
    torch.manual_seed(seed)
    model = PromptSRC(build_random_clip(TEACHER_SHAPE, seed=1), classnames,
                      PromptSRCOptions(prompt_depth_text=2, prompt_depth_vision=3, gpa=False))
    with torch.no_grad():
        for p in learned_parameters(model):
            p.add_(torch.randn_like(p) * 0.1)
    return model


def our_checkpoint(model):
    return {"state_dict": model.trainable_state_dict(), "trainer": "PromptSRC",
            "config": {"TRAINER.PROMPTSRC.CTX_INIT": "a photo of a"}}


def authors_checkpoint(model):
    """The authors' format: their whole CustomCLIP's state dict (frozen CLIP weights among it)."""
    state = {"prompt_learner.ctx": model.ctx.detach(), "image_encoder.VPT": model.visual_ctx.detach(),
             "image_encoder.conv1.weight": torch.zeros(1), "prompt_learner.token_prefix": torch.zeros(1)}
    for i, p in enumerate(model.deep_text):
        state[f"text_encoder.transformer.resblocks.{i + 1}.VPT_shallow"] = p.detach()
    for i, p in enumerate(model.deep_visual):
        state[f"image_encoder.transformer.resblocks.{i + 1}.VPT_shallow"] = p.detach()
    return {"state_dict": state, "epoch": 20}


def build(tiny_clip, classnames=BASE, train_classnames=ALL, **options):
    source = trained_promptsrc()
    teacher = build_teacher(build_random_clip(TEACHER_SHAPE, seed=1), ALL, teacher_prompts(our_checkpoint(source), "t"), "t")
    torch.manual_seed(0)
    opts = PromptKDOptions(**{"teacher_checkpoint": "t", "prompt_depth_vision": 2, **options})
    return PromptKD(tiny_clip, classnames, opts, teacher, train_classnames)


def test_options_are_the_authors_recipe():
    assert OPTIONS["PROMPTKD"] is PromptKDOptions
    o = PromptKDOptions(teacher_checkpoint="x")
    assert (o.n_ctx_vision, o.prompt_depth_vision, o.teacher_backbone, o.temperature, o.train_on) == (4, 9, "ViT-L/14", 1.0, "all")


@pytest.mark.parametrize("fmt", [our_checkpoint, authors_checkpoint])
def test_teacher_from_our_and_the_authors_checkpoints_is_the_trained_promptsrc(fmt, images):
    source = trained_promptsrc()
    state = fmt(source)
    if fmt is our_checkpoint:  # an unfinished run's GPA sum is not the teacher
        state["state_dict"]["gpa.ctx"] = torch.ones_like(source.ctx)
    prompts = teacher_prompts(state, "t")
    assert (prompts.options.n_ctx_text, prompts.options.prompt_depth_text, prompts.options.prompt_depth_vision) == (4, 2, 3)
    teacher = build_teacher(build_random_clip(TEACHER_SHAPE, seed=1), BASE, prompts, "t")
    assert not any(p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        assert torch.equal(teacher.class_text_features(), source.class_text_features())
        assert torch.equal(teacher.image_features(images), source.image_features(images))


def test_teacher_files_that_do_not_fit_are_one_line(tiny_clip):
    with pytest.raises(UserError) as info:
        teacher_prompts({"state_dict": {"ctx": torch.zeros(4, 128)}, "trainer": "IVLP"}, "f.pth")
    assert str(info.value) == "TRAINER.PROMPTKD.TEACHER_CHECKPOINT f.pth was saved by trainer IVLP, not PromptSRC."
    with pytest.raises(UserError) as info:
        teacher_prompts({"state_dict": {"visual_ctx": torch.zeros(4, 128)}}, "f.pth")
    assert str(info.value) == ("TRAINER.PROMPTKD.TEACHER_CHECKPOINT f.pth is not a PromptSRC checkpoint "
                               "(no 'ctx' or 'prompt_learner.ctx' in its state_dict).")
    prompts = teacher_prompts(our_checkpoint(trained_promptsrc()), "f.pth")
    wider = ClipShape(32, 32, 3, 192, 8, 77, 49408, 128, 2, 3)  # visual prompts of width 128 do not fit 192
    with pytest.raises(UserError) as info:
        build_teacher(build_random_clip(wider, seed=0), BASE, prompts, "f.pth")
    assert str(info.value).startswith(
        "TRAINER.PROMPTKD.TEACHER_CHECKPOINT f.pth does not fit the teacher CLIP (TRAINER.PROMPTKD.TEACHER_BACKBONE): ")


def test_loss_is_the_temperature_scaled_kl_to_the_teacher_and_reads_no_label(tiny_clip, images):
    model = build(tiny_clip, temperature=2.0, kd_weight=3.0)
    loss, summary = model.loss(images, LABELS)
    teacher = model.teacher
    with torch.no_grad():
        g = normalize(teacher.encode_class_text())  # every class, in ALL's order
        t_logits = teacher.logit_scale * teacher.image_features(images) @ g.t()
    s_logits = model.logit_scale * normalize(model.encode_images(images)) @ g.t()
    p_t = F.softmax(t_logits / 2, dim=1)
    expected = 3.0 * 4 * (p_t * (p_t.log() - F.log_softmax(s_logits / 2, dim=1))).sum() / s_logits.numel()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    assert summary["kd"] == pytest.approx(loss.item() / 3.0, rel=1e-5)
    torch.testing.assert_close(model.loss(images, None)[0], loss, rtol=0, atol=0)  # unlabeled
    torch.testing.assert_close(model.loss(images, LABELS.flip(0))[0], loss, rtol=0, atol=0)


def test_gradients_reach_exactly_the_students_prompts_and_projector(tiny_clip, images):
    model = build(tiny_clip)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == LEARNED
    model.loss(images, LABELS)[0].backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in LEARNED), name


def test_teacher_text_features_are_computed_once_and_exactly(tiny_clip, images):
    """The frozen teacher's text side reads no image: one pass gives every step's bits."""
    model = build(tiny_clip)
    calls = []
    encode = model.teacher.class_text_features
    model.teacher.class_text_features = lambda: calls.append(1) or encode()
    for _ in range(3):
        model.loss(images, LABELS)
        with torch.no_grad(), model.cached_text_features():
            model(images)
    assert len(calls) == 1
    with torch.no_grad():
        assert torch.equal(model.teacher_text_features(), encode())
    model.configure(eos_cut=False)  # another path: computed again
    model.teacher_text_features()
    assert len(calls) == 2


def test_evaluation_never_runs_the_teacher_image_tower(tiny_clip, images):
    model = build(tiny_clip).eval()
    model.teacher.image_features = None  # any call would fail
    with torch.no_grad(), model.cached_text_features():
        logits = model(images)
    assert logits.shape == (4, len(BASE))
    base = model.logits(model.image_features(images), model.teacher_text_features()[:3])  # ALL's base classes
    torch.testing.assert_close(logits, base, rtol=0, atol=0)


def test_train_on_eval_spreads_the_teacher_over_the_evaluated_classes_only(tiny_clip, images):
    model = build(tiny_clip, train_classnames=None, train_on="eval")
    assert model.train_classnames == BASE
    assert model.teacher_logits(images).shape == (4, len(BASE))


def test_loss_falls_on_a_tiny_task(tiny_clip, images):
    model = build(tiny_clip)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=0.5), 20)
    assert losses[-1] < 0.7 * losses[0]


def test_save_load_round_trip_keeps_the_batchnorm_statistics_and_evaluates_new_classes(tiny_clip, images):
    model = build(tiny_clip)
    train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=0.1), 2)
    state = model.trainable_state_dict()
    assert set(state) == LEARNED | STATS and state["projector.1.num_batches_tracked"] == 2
    again, new = build(tiny_clip), build(tiny_clip, NEW)
    again.load_trainable_state_dict(state)
    new.load_trainable_state_dict(state)
    model.eval(), again.eval(), new.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images), rtol=0, atol=0)
        features = model.teacher_text_features()[3:]  # ALL's new classes
        torch.testing.assert_close(new(images), model.logits(model.image_features(images), features), rtol=0, atol=0)
    with pytest.raises(ValueError, match="missing"):
        again.load_trainable_state_dict({k: v for k, v in state.items() if k not in STATS})


def test_fast_paths_equal_slow_ones(tiny_clip, images):
    model = build(tiny_clip).eval()  # BatchNorm as evaluated: both paths see the same statistics
    fast, slow = fast_and_slow(model, images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


# ---- Dassl end to end -------------------------------------------------------------------------


@pytest.fixture
def teacher_clip_path(tmp_path):
    path = tmp_path / "teacher_clip.pt"
    torch.save(build_random_clip(TEACHER_SHAPE, seed=1).state_dict(), path)
    return str(path)


@requires_dassl
def test_teacher_then_student_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path, teacher_clip_path,
                                                                   monkeypatch):
    """teacher_train.sh trains PromptSRC on the base classes; the student trains on every class's
    images (twice the base ones), evaluates on base, then on new, against that teacher."""
    data, out = tmp_path / "data", tmp_path / "out"
    monkeypatch.setenv("TEACHER_SHOTS", "2")
    make_tiny_dataset(str(data), "Caltech101", num_classes=6, images_per_class=6)
    env = {"DATA": str(data), "OUTPUT": str(out), "SHOTS": "2", "PYTHON": "python3"}
    run_script("scripts/promptkd/teacher_train.sh", "caltech101", "1", "MODEL.BACKBONE.NAME", teacher_clip_path,
               *TINY_OVERRIDES, "OPTIM.MAX_EPOCH", "1", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2",
               "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2", env=env)
    state = run_base2new_scripts("promptkd", "PromptKD", tmp_path, tiny_clip_path,
                                 "TRAINER.PROMPTKD.TEACHER_BACKBONE", teacher_clip_path,
                                 "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "4")
    assert set(state) == LEARNED | STATS
    assert state["projector.0.weight"].shape == (48, 32, 1, 1)  # student embedding -> the teacher's
    (train_dir,) = out.glob("base2new/train_base/caltech101/shots_2/PromptKD/*/seed1")
    result = json.loads((train_dir / "result.json").read_text())
    assert result["cost"]["train_images"] == 6 * 2  # 6 classes x 2 shots in 3 batches, not the 3 base classes'


@requires_dassl
@pytest.mark.parametrize("overrides,message", [
    (["TRAINER.PROMPTKD.TEACHER_BACKBONE", "{student}"], "TRAINER.PROMPTKD.TEACHER_CHECKPOINT is empty; train the teacher first (scripts/promptkd/teacher_train.sh) "
         "or give the authors' teacher file."),
    (["TRAINER.PROMPTKD.TEACHER_CHECKPOINT", "/nowhere/teacher.pth", "TRAINER.PROMPTKD.TEACHER_BACKBONE", "{student}"],
     "TRAINER.PROMPTKD.TEACHER_CHECKPOINT /nowhere/teacher.pth does not exist."),
    (["TRAINER.PROMPTKD.TEACHER_CHECKPOINT", "{student}", "TRAINER.PROMPTKD.TEACHER_BACKBONE", "/nowhere/L14.pt"],
     "Teacher (TRAINER.PROMPTKD.TEACHER_BACKBONE): MODEL.BACKBONE.NAME '/nowhere/L14.pt' is neither a CLIP model name "
     "nor an existing file."),
])
def test_train_py_refuses_a_missing_teacher_in_one_line(tmp_path, tiny_clip_path, capsys, overrides, message):
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    overrides = [o.replace("{student}", tiny_clip_path) for o in overrides]
    status = train_in_process([
        "--root", str(data), "--trainer", "PromptKD", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml", "--output-dir",
        str(tmp_path / "out"), "MODEL.BACKBONE.NAME", tiny_clip_path, *TINY_OVERRIDES, "DATASET.NUM_SHOTS", "1",
        *overrides,
    ])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip().startswith(f"error: {message}")


@requires_dassl
def test_an_unfinished_teacher_run_is_refused_and_a_named_file_taken_as_given(tmp_path):
    from trainers.promptkd import check_teacher_finished, teacher_file

    run = tmp_path / "teacher"
    (run / "model").mkdir(parents=True)
    path = run / "model" / "model.pth.tar-1"
    torch.save({**our_checkpoint(trained_promptsrc()), "epoch": 1, "max_epoch": 20, "finished": False}, path)
    assert teacher_file(str(run)) == str(path)
    checkpoint = torch.load(path, weights_only=True)
    with pytest.raises(UserError) as info:
        check_teacher_finished(checkpoint, str(path), str(run))
    assert str(info.value) == (
        f"TRAINER.PROMPTKD.TEACHER_CHECKPOINT {run}: its training is unfinished ({path}: epoch 1 of 20); "
        "finish it (the same teacher command resumes it) or name a file.")
    check_teacher_finished(checkpoint, str(path), str(path))  # a file named: as given
    with pytest.raises(UserError) as info:
        teacher_file(str(tmp_path))
    assert str(info.value) == (f"TRAINER.PROMPTKD.TEACHER_CHECKPOINT: No checkpoint in {tmp_path / 'model'} "
                               "(the folder does not exist).")
