"""clipprompt.results.identity: what makes two runs the same run (torch-free, Dassl-free)."""

import json

import pytest
from yacs.config import CfgNode

from clipprompt.results import identity


def config(**changes):
    cfg = CfgNode({"OUTPUT_DIR": "out/a", "SEED": 1, "OPTIM": CfgNode({"LR": 0.002, "MAX_EPOCH": 5}),
                   "INPUT": CfgNode({"SIZE": (224, 224)}), "DATALOADER": CfgNode({"NUM_WORKERS": 8})})
    for key, value in changes.items():
        node = cfg
        *path, leaf = key.split(".")
        for part in path:
            node = node[part]
        node[leaf] = value
    return cfg


def test_the_identity_leaves_out_what_cannot_change_the_result():
    ident = identity.identity(identity.flatten(config()))
    assert ident == {"INPUT.SIZE": [224, 224], "OPTIM.LR": 0.002, "OPTIM.MAX_EPOCH": 5, "SEED": 1}
    moved = identity.identity(identity.flatten(config(OUTPUT_DIR="elsewhere", **{"DATALOADER.NUM_WORKERS": 0})))
    assert moved == ident and identity.digest(moved) == identity.digest(ident)
    other = identity.identity(identity.flatten(config(**{"OPTIM.LR": 0.5})))
    assert identity.differences(ident, other) == ["OPTIM.LR (0.002 -> 0.5)"]
    assert identity.digest(other) != identity.digest(ident)


def test_an_older_result_is_compared_through_the_configuration_it_saved():
    """result.json written before identities were recorded kept yacs' YAML dump of the config."""
    cfg = config()
    older = {"metrics": {"accuracy": 50.0}, "config": cfg.dump()}
    assert identity.recorded(older) == identity.identity(identity.flatten(cfg))
    recorded = {"identity": {"SEED": 2}, "config": cfg.dump()}
    assert identity.recorded(recorded) == {"SEED": 2}  # what it recorded wins
    assert identity.recorded({"config": ": not yaml ["}) is None and identity.recorded({}) is None
    json.dumps(identity.recorded(older))  # JSON-able, as result.json needs


@pytest.mark.parametrize("overrides, refused", [
    (["OPTIM.LR", "0.1", "OPTIM.MAX_EPOCH", "5"], None),
    (["OPTIM.LR", "0.1", "DATASET.NUM_SHOTS", "2"], "DATASET.NUM_SHOTS"),
    (["SEED", "2"], "SEED"),
    (["DATASET.SUBSAMPLE_CLASSES", "all"], "DATASET.SUBSAMPLE_CLASSES"),
    (["MODEL.BACKBONE.NAME", "SEED"], None),  # a value, not a key
])
def test_protocol_owned_overrides(overrides, refused, capsys, tmp_path):
    """The scripts ask once per run (`layout finished DIR ... -- OVERRIDES`): 2 for a key the
    protocol owns, before the folder is looked at; else 0 (finished) or 1 (not)."""
    from clipprompt.results import layout

    why = identity.owned_overrides(overrides)
    assert (why is None) if refused is None else why.startswith(f"{refused} cannot be overridden in a protocol run")
    assert layout.main(["finished", str(tmp_path / "run"), "--trainer", "CoOp", "--", *overrides]) == \
        (1 if refused is None else 2)
    out, err = capsys.readouterr()
    assert err == ("" if refused is None else f"error: {why}\n") and out == ""


def test_the_backbone_compares_by_content_where_both_sides_know_it():
    record = {"backbone": "/a/clip.pt", "backbone_sha256": "3f1c" * 16}
    assert identity.backbone_difference(record, "/b/moved.pt", "3f1c" * 16) is None  # moved: the same run
    assert identity.backbone_difference(record, "/a/clip.pt", "77e0" * 16) == (
        "MODEL.BACKBONE.NAME ('/a/clip.pt' -> '/a/clip.pt': another file, sha256 3f1c3f1c3f1c -> 77e077e077e0)")
    # a published model's name, or a result written before backbone_sha256: by name
    assert identity.backbone_difference({"backbone": "ViT-B/16", "backbone_sha256": "3f1c"}, "ViT-B/16", None) is None
    assert identity.backbone_difference({"backbone": "ViT-B/16"}, "ViT-B/32", None) == (
        "MODEL.BACKBONE.NAME ('ViT-B/16' -> 'ViT-B/32')")
    assert identity.backbone_difference({"backbone": "/a/clip.pt"}, "/b/clip.pt", "3f1c") is not None
    # with the rest of the identity and the tag
    stored = {"MODEL.BACKBONE.NAME": "/a/clip.pt", "OPTIM.LR": 0.002}
    result = {**record, "identity": stored, "tag": "v1"}
    assert identity.finished_differences(result, {**stored, "MODEL.BACKBONE.NAME": "/b/moved.pt"}, "v1",
                                         "3f1c" * 16) == []
    assert identity.finished_differences(result, {**stored, "OPTIM.LR": 0.5}, "", "77e0" * 16) == [
        "OPTIM.LR (0.002 -> 0.5)",
        "MODEL.BACKBONE.NAME ('/a/clip.pt' -> '/a/clip.pt': another file, sha256 3f1c3f1c3f1c -> 77e077e077e0)",
        "tag ('v1' -> '')"]
    assert identity.finished_differences({"metrics": {}}, stored, "", None) is None  # nothing recorded to compare


def test_the_inputs_digest_follows_the_code_that_holds_the_defaults(tmp_path, monkeypatch):
    """A default changed between releases changes the fingerprint, so the digest, so train.py compares
    the resolved configuration instead of skipping on the inputs alone."""
    labels = [label for label, _ in identity.defaults_sources()]
    assert {"clipprompt/options.py", "clipprompt/config.py", "clipprompt/models/coop.py", "train.py",
            "dassl.config:defaults.py", "yacs.config:config.py"} <= set(labels)
    source = tmp_path / "options.py"
    source.write_text("n_ctx: int = option(16)\n")
    monkeypatch.setattr(identity, "defaults_sources", lambda: [("clipprompt/options.py", source)])
    identity.defaults_fingerprint.cache_clear()
    try:
        inputs = {"trainer": "CoOp", "overrides": [["OPTIM.LR", "0.5"]]}
        before = identity.inputs_digest(inputs)
        assert identity.inputs_digest(dict(inputs)) == before
        assert identity.inputs_digest({**inputs, "overrides": [["OPTIM.LR", "0.05"]]}) != before
        source.write_text("n_ctx: int = option(4)\n")
        identity.defaults_fingerprint.cache_clear()
        assert identity.inputs_digest(inputs) != before
    finally:
        identity.defaults_fingerprint.cache_clear()


@pytest.mark.parametrize("tag, ok", [("lr0.1", True), ("ctx-8_v2", True), ("", True), ("a/b", False),
                                     ("CoOp@x", False), (".hidden", False), ("two words", False)])
def test_tags(tag, ok):
    if ok:
        assert identity.check_tag(tag) == tag
    else:
        with pytest.raises(ValueError, match="use letters, digits and"):
            identity.check_tag(tag)
