"""Every backbone kind behind one interface: clip's ViT and ResNet CLIPs and open_clip's ViTs, built
tiny and random, saved and loaded back through `load_clip` (no download). With nothing injected our
encoders give the library's own `encode_text` / `encode_image` bit for bit on the exact path; each
method trains a step and evaluates on each kind it supports and is refused in one line on the others."""

import pytest
import torch

from clipprompt.backbones.encoders import FrozenImageEncoder
from clipprompt.backbones.interface import as_backbone, input_resolution
from clipprompt.backbones.loading import load_clip
from clipprompt.backbones.random_clip import save_random_clip, save_random_openclip
from clipprompt.errors import ConfigError, UserError
from clipprompt.models import (
    DePT, IVLP, MMA, MMRL, MPL, SEP, TCP, VPT, CoCoOp, CoOp, IVLPOptions, KgCoOp, MaPLe, MaPLeOptions, MMAOptions,
    MMRLOptions, MMRLpp, MMRLppOptions, MPLOptions, CoPrompt, CoPromptOptions, HiCroPL, HiCroPLOptions,
    ProGrad, PromptKD, PromptKDOptions, PromptSRC, PromptSRCOptions, VPTOptions,
    SEPOptions, TCPOptions, ZeroshotCLIP,
)
from clipprompt.models.base import FROZEN_IMAGE_METHODS

CLASSES = ["cat", "dog", "fire truck"]
TEXTS = ["a photo of a dog.", "a big red fire truck parked outside the station", "x"]


@pytest.fixture(scope="session")
def backbone_files(tmp_path_factory):
    """MODEL.BACKBONE.NAME of each kind: tiny random weights saved by the library's own model class."""
    root = tmp_path_factory.mktemp("backbones")
    return {
        "openai-vit": save_random_clip(str(root / "vit.pt"), "tiny"),
        "openai-resnet": save_random_clip(str(root / "rn.pt"), "tiny-rn"),
        "openclip-vit": save_random_openclip(str(root / "openclip")),
        "openclip-resnet": save_random_openclip(  # open_clip's ModifiedResNet, RN50's stages at width 8
            str(root / "openclip_rn"), name="tiny-openclip-rn", vision_cfg={"image_size": 32, "layers": [3, 4, 6, 3], "width": 8}
        ),
        # layer scale in every block, as some open_clip models have
        "openclip-vit-ls": save_random_openclip(
            str(root / "openclip_ls"), name="tiny-openclip-ls",
            vision_cfg={"image_size": 32, "layers": 3, "width": 128, "patch_size": 8, "ls_init_value": 0.1},
            text_cfg={"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 3, "ls_init_value": 0.1},
        ),
    }


def tokenize(kind, texts):
    if kind.startswith("openclip"):
        import open_clip

        return open_clip.tokenize(texts)  # open_clip's own tokenizer for its encode_text
    from clipprompt.backbones._clip import clip

    return clip.tokenize(texts)


@pytest.mark.parametrize("kind", ["openai-vit", "openai-resnet", "openclip-vit", "openclip-vit-ls", "openclip-resnet"])
def test_exact_path_is_the_librarys_own_encoders_bit_for_bit(backbone_files, images, kind):
    model = load_clip(backbone_files[kind])
    backbone = as_backbone(model, fused=False)
    assert backbone.kind == kind.removesuffix("-ls")
    tokens = tokenize(kind, TEXTS)
    with torch.no_grad():
        assert torch.equal(backbone.text.encode_tokens(tokens), model.encode_text(tokens))
        assert torch.equal(backbone.image(images), model.encode_image(images))
        fused = as_backbone(model, fused=True)  # the fast path: the same up to rounding
        torch.testing.assert_close(fused.text.encode_tokens(tokens), model.encode_text(tokens), rtol=0, atol=1e-5)
        torch.testing.assert_close(fused.image(images), model.encode_image(images), rtol=0, atol=1e-5)


def test_sequence_first_openclip_transformers_are_run_as_open_clip_runs_them(backbone_files, images):
    """Older open_clip versions ran their transformers sequence-first (`batch_first=False`)."""
    model = load_clip(backbone_files["openclip-vit"])
    for transformer in (model.transformer, model.visual.transformer):
        transformer.batch_first = False
        for block in transformer.resblocks:
            block.attn.batch_first = False
    backbone = as_backbone(model, fused=False)
    tokens = tokenize("openclip-vit", TEXTS)
    with torch.no_grad():
        assert torch.equal(backbone.text.encode_tokens(tokens), model.encode_text(tokens))
        assert torch.equal(backbone.image(images), model.encode_image(images))


@pytest.mark.parametrize("kind", ["openai-vit", "openclip-vit", "openclip-vit-ls", "openclip-sequence-first"])
@pytest.mark.parametrize("fused", [False, True])
def test_parallel_branches_add_to_the_blocks_output(backbone_files, images, kind, fused):
    """`parallel={i: fn}`: block i's output plus fn(its input), on both encoders, both paths; on the
    exact path fn sees the tokens in the library's order (sequence-first for clip)."""
    model = load_clip(backbone_files[kind.replace("-sequence-first", "-vit")])
    if kind.endswith("sequence-first"):
        for transformer in (model.transformer, model.visual.transformer):
            transformer.batch_first = False
            for block in transformer.resblocks:
                block.attn.batch_first = False
    backbone = as_backbone(model, fused=fused)
    sequence_first = kind.startswith("openai") or kind.endswith("sequence-first")
    tokens = tokenize(kind, TEXTS)
    text, image = backbone.text, backbone.image
    seen, inputs = [], {}

    def branch(x):
        seen.append(tuple(x.shape))
        return torch.tanh(x) * 0.5  # per token

    def keep(x):
        inputs["x"] = x
        return x

    for run in (lambda **k: text(text.embed(tokens), tokens.argmax(-1), **k), lambda **k: image(images, **k)):
        seen.clear()
        with torch.no_grad():
            with_branch = run(injections={1: keep}, parallel={1: branch})
            # the same as adding fn(block 1's input) to its output by an injection before block 2
            added = run(injections={1: keep, 2: lambda x: x + torch.tanh(inputs["x"]) * 0.5})
            assert not torch.allclose(with_branch, run(), atol=1e-4)
        torch.testing.assert_close(with_branch, added, rtol=1e-5, atol=1e-6)
        batch_first = tuple(inputs["x"].shape)
        assert seen == [batch_first[1::-1] + batch_first[2:] if sequence_first and not fused else batch_first]


@pytest.mark.parametrize("kind", ["openai-vit", "openclip-vit", "openclip-vit-ls"])
def test_inserted_tokens_may_grow_the_text_past_its_context_on_both_paths(backbone_files, kind):
    """MMRL inserts tokens after [SOS]: 77 + 3 tokens stay causal on the exact path (a mask of their
    length) as on the fused one, and the features at the moved EOS do not see the padding after it."""
    from clipprompt.backbones.encoders import insert_tokens

    tokens = tokenize("openai-vit", TEXTS)
    values = torch.randn(3, 128)
    outputs = []
    for fused in (False, True):
        encoder = as_backbone(load_clip(backbone_files[kind]), fused=fused).text
        with torch.no_grad():
            embeddings = encoder.embed(tokens)
            full = encoder(embeddings, tokens.argmax(-1) + 3, {1: insert_tokens(values, 1)})
            short = embeddings[:, : int(tokens.argmax(-1).max()) + 1]  # cut after the EOS: the same features
            outputs.append(full)
            torch.testing.assert_close(encoder(short, tokens.argmax(-1) + 3, {1: insert_tokens(values, 1)}), full,
                                       rtol=0, atol=1e-5)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["openai-vit", "openclip-vit", "openclip-vit-ls"])
@pytest.mark.parametrize("fused", [False, True])
def test_an_image_pass_split_at_a_block_is_the_whole_pass(backbone_files, images, kind, fused):
    """`run_to` / `encode_from`: passes branching at a block share the prefix before it (MMRL's frozen pass)."""
    encoder = as_backbone(load_clip(backbone_files[kind]), fused=fused).image
    with torch.no_grad():
        for block in (0, 2):
            prefix = encoder.run_to(images, block)
            assert prefix.shape == (4, encoder.num_tokens, encoder.width)
            assert torch.equal(encoder.encode_from(prefix, block), encoder(images))


def test_insert_tokens_grows_the_sequence_at_the_position():
    from clipprompt.backbones.encoders import insert_tokens

    x, values = torch.randn(2, 5, 4), torch.randn(3, 4)
    grown = insert_tokens(values, 1)(x)
    assert grown.shape == (2, 8, 4)
    assert torch.equal(grown[:, :1], x[:, :1]) and torch.equal(grown[:, 4:], x[:, 1:])
    assert torch.equal(grown[:, 1:4], values.expand(2, 3, 4))


def test_openclip_tokens_are_clips(backbone_files):
    """Prompts are tokenized with `clip.tokenize`: open_clip's BPE gives the same ids."""
    assert torch.equal(tokenize("openclip-vit", TEXTS), tokenize("openai-vit", TEXTS))


def test_layer_scale_is_applied(backbone_files, images):
    model = load_clip(backbone_files["openclip-vit-ls"])
    block = model.visual.transformer.resblocks[0]
    assert not torch.equal(block.ls_1.gamma, torch.ones_like(block.ls_1.gamma))  # the test would miss a dropped scale
    encoder = as_backbone(model, fused=True).image
    with torch.no_grad():
        reference = encoder(images)
        block.ls_1.gamma.mul_(2)
        assert not torch.allclose(encoder(images), reference)


def test_resnet_image_encoder_is_the_frozen_tower(backbone_files, images):
    model = load_clip(backbone_files["openai-resnet"])
    encoder = as_backbone(model).image
    assert isinstance(encoder, FrozenImageEncoder) and input_resolution(model) == 32
    with pytest.raises(ValueError, match="ResNet \\(ModifiedResNet\\): it has no tokens to prompt"):
        encoder(images, prompts=torch.zeros(1, 2, 8))
    with pytest.raises(ValueError, match="ResNet \\(ModifiedResNet\\): it has no tokens to prompt"):
        encoder(images, parallel={0: lambda x: x})


def build(method, clip):
    """Each method at a size the tiny CLIPs (3 blocks) take."""
    if method is MaPLe:
        return MaPLe(clip, CLASSES, MaPLeOptions(prompt_depth=3))
    if method is VPT:
        return VPT(clip, CLASSES, VPTOptions(prompt_depth_vision=3))
    if method is IVLP:
        return IVLP(clip, CLASSES, IVLPOptions(prompt_depth_text=3, prompt_depth_vision=3))
    if method is PromptSRC:
        return PromptSRC(clip, CLASSES, PromptSRCOptions(prompt_depth_text=3, prompt_depth_vision=3))
    if method is TCP:
        return TCP(clip, CLASSES, TCPOptions(layer=1))
    if method is MMA:
        return MMA(clip, CLASSES, MMAOptions(adapter_start=2, adapter_end=3))
    if method is MMRL:
        return MMRL(clip, CLASSES, MMRLOptions(rep_layers=[2, 3], rep_dim=16))
    if method is MMRLpp:
        return MMRLpp(clip, CLASSES, MMRLppOptions(rep_layers=[2, 3], rep_dim=16, proj_lora_dim=8))
    if method is CoPrompt:
        return CoPrompt(clip, CLASSES, CoPromptOptions(prompt_depth=3), [[f"a {c}.", f"one {c}."] for c in CLASSES])
    if method is HiCroPL:
        return HiCroPL(clip, CLASSES, HiCroPLOptions(prompt_depth=3, cross_layer=2))
    if method is MPL:
        return MPL(clip, CLASSES, MPLOptions(text_chunk=0))
    if method is PromptKD:  # its teacher: a PromptSRC on a tiny OpenAI ViT, whatever the student's CLIP
        from clipprompt.backbones.random_clip import build_random_clip

        teacher = PromptSRC(build_random_clip("tiny", seed=1), CLASSES, PromptSRCOptions(prompt_depth_text=3, prompt_depth_vision=3))
        return PromptKD(clip, CLASSES, PromptKDOptions(teacher_checkpoint="t", prompt_depth_vision=3), teacher)
    if method is SEP:
        model = SEP(clip, CLASSES)
        model.init_prototypes(torch.nn.functional.normalize(torch.randn(len(CLASSES), model.embed_dim), dim=-1))
        return model
    return method(clip, CLASSES)


METHODS = [ZeroshotCLIP, CoOp, CoCoOp, KgCoOp, ProGrad, TCP, MPL, SEP, VPT, IVLP, MaPLe, PromptSRC, MMA, MMRL, MMRLpp, CoPrompt, HiCroPL, PromptKD]


@pytest.mark.parametrize("kind", ["openai-vit", "openai-resnet", "openclip-vit", "openclip-resnet"])
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_each_method_trains_and_evaluates_on_each_kind_it_supports(backbone_files, images, kind, method):
    clip = load_clip(backbone_files[kind])
    if kind.endswith("resnet") and method.__name__ not in FROZEN_IMAGE_METHODS:
        with pytest.raises(ConfigError) as error:
            build(method, clip)
        assert str(error.value) == (
            f"{method.__name__} prompts the image encoder's tokens, but this CLIP's image encoder is a ResNet "
            f"(ModifiedResNet) ({kind}); use a ViT backbone, or a method whose image side is frozen: "
            "ZeroshotCLIP, CoOp, CoCoOp, KgCoOp, ProGrad, TCP."
        )
        return
    torch.manual_seed(0)
    model = build(method, clip)
    assert model.backbone_kind == kind
    labels = torch.tensor([0, 1, 2, 1])
    learned = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert bool(learned) == (method is not ZeroshotCLIP)
    if learned:
        optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        loss, summary = model.loss(images, labels)
        assert torch.isfinite(loss) and summary["loss"] == pytest.approx(loss.item())
        loss.backward()
        optim.step()
        changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, learned[n])]
        assert changed, "a training step changed nothing"
    model.eval()
    with torch.no_grad(), model.cached_text_features():
        logits = model(images)
    assert logits.shape == (4, len(CLASSES)) and torch.isfinite(logits).all()


@pytest.mark.parametrize("kind", ["openai-vit", "openai-resnet", "openclip-vit", "openclip-resnet"])
@pytest.mark.parametrize("base", [CoOp, CoCoOp, KgCoOp, MaPLe], ids=lambda m: m.__name__)
def test_dept_trains_and_evaluates_on_each_kind_its_base_supports(backbone_files, images, kind, base):
    clip = load_clip(backbone_files[kind])
    if kind.endswith("resnet") and base is MaPLe:
        with pytest.raises(ConfigError, match="^MaPLe prompts the image encoder's tokens, but this CLIP's image encoder is a ResNet"):
            DePT(build(base, clip))
        return
    torch.manual_seed(0)
    model = DePT(build(base, clip))
    head = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and not n.startswith("base.")}
    loss, _ = model.loss(images, torch.tensor([0, 1, 2, 1]))
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    assert all(not torch.equal(model.get_parameter(n), p) for n, p in head.items()) and len(head) == 6
    model.eval()
    with torch.no_grad(), model.cached_text_features():
        logits = model(images)
    assert logits.shape == (4, len(CLASSES)) and torch.isfinite(logits).all()


def test_promptsrc_without_visual_prompts_runs_on_a_resnet(backbone_files, images):
    clip = load_clip(backbone_files["openai-resnet"])
    model = PromptSRC(clip, CLASSES, PromptSRCOptions(prompt_depth_text=2, prompt_depth_vision=0))
    loss, _ = model.loss(images, torch.tensor([0, 1, 2, 0]))
    assert torch.isfinite(loss)


# ---- layer settings on a ViT of other depths (5 vision blocks, 4 text blocks) -------------------------


@pytest.fixture(scope="module")
def deeper_clip():
    from clipprompt.backbones.random_clip import build_random_clip

    return build_random_clip("tiny-deeper")


def test_sep_default_layers_follow_each_encoders_depth(deeper_clip):
    model = SEP(deeper_clip, CLASSES)
    assert model.text_prompts.layers == [1, 2, 3] and model.visual_prompts.layers == [1, 2, 3, 4]


@pytest.mark.parametrize("build_model, message", [
    (lambda clip: SEP(clip, CLASSES, SEPOptions(layers=[1, 4])),
     "TRAINER.SEP.LAYERS [1, 4] holds blocks out of range: 4 for the text encoder of this CLIP (4 blocks: indices must be in 0..3)."),
    (lambda clip: MaPLe(clip, CLASSES),
     "TRAINER.MAPLE.PROMPT_DEPTH is 9; this CLIP has 4 blocks."),
    (lambda clip: PromptSRC(clip, CLASSES, PromptSRCOptions(prompt_depth_text=4)),
     "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION is 9; this CLIP's image encoder has 5 blocks."),
    (lambda clip: TCP(clip, CLASSES),
     "TRAINER.TCP.LAYER is 8; the text encoder has blocks 0..3."),
    (lambda clip: MMA(clip, CLASSES, MMAOptions(adapter_end=5)),
     "TRAINER.MMA.ADAPTER_END is 5; this CLIP's text encoder has 4 blocks and its image encoder 5, "
     "both adapted at ADAPTER_START..ADAPTER_END."),
    (lambda clip: MMRL(clip, CLASSES),
     "TRAINER.MMRL.REP_LAYERS reaches layer 12; this CLIP's encoders have 4 (text) and 5 (image) blocks."),
])
def test_layer_settings_beyond_the_depth_are_refused_in_one_line(deeper_clip, build_model, message):
    with pytest.raises(ConfigError) as error:
        build_model(deeper_clip)
    assert str(error.value) == message


def test_deep_prompts_fit_the_deeper_vit(deeper_clip, images):
    maple = MaPLe(deeper_clip, CLASSES, MaPLeOptions(prompt_depth=4))
    src = PromptSRC(deeper_clip, CLASSES, PromptSRCOptions(prompt_depth_text=4, prompt_depth_vision=5))
    assert len(maple.deep_text) == 3 and len(src.deep_visual) == 4 and len(src.deep_text) == 3
    for model in (maple, src):
        loss, _ = model.loss(images, torch.tensor([0, 1, 2, 0]))
        loss.backward()
        assert torch.isfinite(loss)


# ---- open_clip names and what prompt learning cannot use ---------------------------------------------


def test_openclip_name_round_trip_is_exact(backbone_files):
    import open_clip

    name = backbone_files["openclip-vit"]
    _, config, weights = name.split(":")
    reference = open_clip.create_model("tiny-openclip", pretrained=weights)
    loaded = load_clip(name).state_dict()
    assert loaded.keys() == reference.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in reference.state_dict().items())


@pytest.mark.parametrize("name, message", [
    ("openclip:ViT-B-16", "MODEL.BACKBONE.NAME 'openclip:ViT-B-16': an open_clip backbone is named "
     "openclip:<ARCHITECTURE>:<WEIGHTS>, e.g. openclip:ViT-B-16:laion2b_s34b_b88k (a pretrained tag) or "
     "openclip:ViT-B-16:/path/to/weights.pt."),
    ("openclip:ViT-B-99:laion2b", "'ViT-B-99' is not an open_clip architecture (open_clip.list_models() names them, "
     "e.g. ViT-B-16, ViT-L-14, RN50) nor a model-config .json file."),
    ("openclip:ViT-B-16:no_such_tag", "'no_such_tag' is neither a pretrained tag of open_clip ViT-B-16 ("),
    ("openclip:ViT-B-16-SigLIP:webli", "open_clip ViT-B-16-SigLIP uses another tokenizer than OpenAI's BPE"),
])
def test_bad_openclip_names_are_one_line(name, message):
    from clipprompt.backbones.loading import resolve_checkpoint

    with pytest.raises(UserError) as error:
        resolve_checkpoint(name)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_offline_download_names_what_to_download_and_where(monkeypatch, tmp_path):
    import open_clip

    from clipprompt.backbones.loading import resolve_checkpoint

    def offline(cfg, cache_dir=None, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    with pytest.raises(UserError) as error:
        resolve_checkpoint("openclip:ViT-B-16:laion2b_s34b_b88k", str(tmp_path))
    assert str(error.value) == (
        "Cannot download open_clip ViT-B-16 weights laion2b_s34b_b88k from https://huggingface.co/laion/"
        f"CLIP-ViT-B-16-laion2B-s34B-b88K/blob/main/open_clip_pytorch_model.bin into {tmp_path} "
        "(OSError: Network is unreachable). Without internet access, download that file elsewhere and set "
        "MODEL.BACKBONE.NAME openclip:ViT-B-16:/path/to/that/file."
    )


@pytest.mark.parametrize("text_changes, message", [
    ({"no_causal_mask": True}, "This open_clip CLIP's text tower has no causal mask; prompt learning reads "
     "features at the EOS token of a causal text encoder."),
    ({"pool_type": "last"}, "This open_clip CLIP pools its text at 'last' (EOS id 2); prompt learning reads "
     "features at the EOS token (text pool type argmax, or eos with OpenAI's BPE)."),
])
def test_openclip_text_towers_without_eos_features_are_refused(tmp_path, text_changes, message):
    from clipprompt.backbones.random_clip import TINY_OPENCLIP

    name = save_random_openclip(str(tmp_path), name=f"tiny-{tmp_path.name}",
                                text_cfg={**TINY_OPENCLIP["text_cfg"], **text_changes})
    with pytest.raises(UserError) as error:
        load_clip(name)
    assert str(error.value) == message


def test_openclip_avg_pooled_vit_runs_frozen_methods_only(tmp_path, images):
    from clipprompt.backbones.random_clip import TINY_OPENCLIP

    name = save_random_openclip(str(tmp_path), name="tiny-openclip-avg",
                                vision_cfg={**TINY_OPENCLIP["vision_cfg"], "pool_type": "avg"})
    clip = load_clip(name)
    model = CoOp(clip, CLASSES)
    assert model.backbone_kind == "openclip-frozen"
    with torch.no_grad():
        assert torch.equal(model.image_encoder(images), clip.encode_image(images))
    with pytest.raises(ConfigError, match="image encoder is a ViT pooled by 'avg', not at its class token"):
        MaPLe(clip, CLASSES, MaPLeOptions(prompt_depth=2))


def test_without_open_clip_installed_the_name_says_how_to_install_it(monkeypatch):
    import sys

    from clipprompt.backbones.loading import resolve_checkpoint

    monkeypatch.setitem(sys.modules, "open_clip", None)  # `import open_clip` raises ImportError
    with pytest.raises(UserError) as error:
        resolve_checkpoint("openclip:ViT-B-16:laion2b_s34b_b88k")
    assert str(error.value) == (
        'open_clip backbones need the open_clip package: pip install -e ".[openclip]" (PyPI open-clip-torch).'
    )


def test_a_model_of_no_known_library_is_refused():
    with pytest.raises(TypeError, match="Not a CLIP model of clip or open_clip: torch.nn.modules.linear.Linear"):
        as_backbone(torch.nn.Linear(2, 2))
