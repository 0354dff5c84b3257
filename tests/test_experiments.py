"""Which experiments the tables need, and their names."""
from pathlib import Path

from bana_core.config import load_yaml, validate_config
from bana_core.experiments import Experiments, Segmenter, parse_classifier, parse_segmenter

ROOT = Path(__file__).resolve().parents[1]


def exp(config: str = "config.yaml"):
    return Experiments(validate_config(load_yaml(ROOT / "config" / config), ROOT / "config" / "schema.yaml"))


def test_classifiers_cover_tables_3_6_8_without_duplicates():
    names = exp().classifiers()
    assert names == sorted(set(names))
    assert set(names) == {"bap-g1-aug", "bap-g2-aug", "bap-g3-aug", "bap-g4-aug", "bap-g5-aug",
                          "gap-g4-aug", "bap-g4-noaug", "gap-g4-noaug"}


def test_table8_scores_noaug_classifiers_on_voc_train():
    sets = exp().table8_sets()
    assert sets[("bap", "std", "noaug", "train")].split == "train"
    assert sets[("bap", "std", "aug", "train")].split == "train_aug"
    assert sets[("gap", "nou0", "aug", "val")].variant == "nou0"
    assert len(sets) == 2 * 2 * 2 * 2


def test_label_sets_are_shared_between_tables():
    e = exp()
    all_sets = e.label_sets()
    assert len(all_sets) == len(set(all_sets))
    assert e.table3_sets()["bap"] in all_sets and e.training_labels() in all_sets
    # Table 3's BAP set is Table 6's (grid 4, gen 1) cell: built once.
    assert e.table3_sets()["bap"] == e.table6_sets()[(4, 1)]


def test_segmenters_and_names_round_trip():
    e = exp("voc2012.yaml")  # the paper's 3 x 3 Fig. 3 grid (the demo keeps its 2 x 2 corners)
    names = e.segmenters()
    assert len(names) == 8 + 3 + 9  # Table 5 (with full supervision), Table 7's others, Fig. 3
    assert len(exp().segmenters()) == 8 + 3 + 4
    for name in names:
        assert parse_segmenter(name).name == name
    assert parse_segmenter("v1-nal-lam0.05-damp70") == Segmenter("v1", "nal", 0.05, 70.0)
    assert parse_classifier("gap-g4-noaug") == ("gap", 4, "noaug")


def test_experiments_rebuild_from_their_settings_alone():
    # The table job rebuilds the experiments from this small dict (a param), not the config.
    from bana_core.experiments import experiment_settings

    for name in ("config.yaml", "voc2012.yaml"):
        config = validate_config(load_yaml(ROOT / "config" / name), ROOT / "config" / "schema.yaml")
        full, small = Experiments(config), Experiments(experiment_settings(config))
        assert small.label_sets() == full.label_sets() and small.segmenters() == full.segmenters()
        assert small.classifiers() == full.classifiers() and small.coco == full.coco
        assert small.fig3_models() == full.fig3_models()
