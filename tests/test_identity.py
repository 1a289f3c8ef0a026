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
def test_protocol_owned_overrides(overrides, refused, capsys):
    why = identity.owned_overrides(overrides)
    assert (why is None) if refused is None else why.startswith(f"{refused} cannot be overridden in a protocol run")
    assert identity.main(["owned", *overrides]) == (0 if refused is None else 2)
    err = capsys.readouterr().err
    assert err == ("" if refused is None else f"error: {why}\n")


@pytest.mark.parametrize("tag, ok", [("lr0.1", True), ("ctx-8_v2", True), ("", True), ("a/b", False),
                                     ("CoOp@x", False), (".hidden", False), ("two words", False)])
def test_tags(tag, ok):
    if ok:
        assert identity.check_tag(tag) == tag
    else:
        with pytest.raises(ValueError, match="use letters, digits and"):
            identity.check_tag(tag)
