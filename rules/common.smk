# Shared helpers: config validation, paths, experiment lists, code-version params.
# Paths for a new rule's outputs (R, RUN_DIR, TABLES) and how seeds work: docs/adding_a_rule.md.
import functools
import sys
from pathlib import Path

from bana_core import claims as claim_specs
from bana_core import experiments, rule_params, seeds, shipped_weights, tables
from bana_core.code_versions import code_version
from bana_core.config import load_yaml, validate_config
from bana_core.errors import ConfigError
from bana_core.imagenet import imagenet_url, url_of_file as imagenet_url_of_file
from bana_core.job_resources import check_overrides as check_resource_overrides
from bana_core.job_resources import job_resources
from bana_core.loss_registry import LOSSES

# The files this run's config came from: --configfile, else the demo (see the Snakefile).
CONFIG_FILES = [str(f) for f in workflow.overwrite_configfiles] or ["config/config.yaml"]
# Set only in a further seed's module (the Snakefile): which seed this copy of the workflow runs.
FURTHER_SEED = config.pop(seeds.FURTHER_SEED_KEY, None)
try:
    for _file in CONFIG_FILES:  # Snakemake's own reader keeps the last of a key given twice, silently
        load_yaml(_file)
    _validated = validate_config(config, workflow.source_path("../config/schema.yaml"))
    # Before any job: the recipe the shipped backbones came from. A further seed's module reuses
    # the run's (seeds[0]'s) backbones, so the run's own config is the one checked.
    _own_data = _validated["dataset"]["source"] == "local"
    if _validated["pretrain"]["weights"] == "shipped" and FURTHER_SEED is None and not _own_data:
        shipped_weights.check_config(_validated)
    FURTHER_SEEDS = seeds.further_seeds(_validated)  # seeds[1:]: one module each (the Snakefile)
except ConfigError as _err:
    sys.exit(f"Configuration error in {', '.join(CONFIG_FILES)}: {_err}")
config.clear()
config.update(_validated)

RUN = config["run"]
RUN_DIR = f"results/{RUN}"  # seeds[0]'s folder, the run itself
# A further seed writes under the run's seeds/<s>/ and, with synthetic data, draws its own data.
R = RUN_DIR if FURTHER_SEED is None else seeds.seed_run_dir(RUN_DIR, FURTHER_SEED)
SYNTHETIC = config["dataset"]["source"] == "synthetic"
OWN_DATA = config["dataset"]["source"] == "local"  # a user's own boxes: rules/own_data.smk instead of the paper's
DATA_NAME = config["dataset"]["name"]
if FURTHER_SEED is not None and SYNTHETIC:
    DATA_NAME = seeds.seed_dataset_name(DATA_NAME, FURTHER_SEED)
DATA = f"data/{DATA_NAME}"
VOC = f"{DATA}/VOCdevkit/VOC2012"
SBD = f"{DATA}/benchmark_RELEASE/dataset"
COCO = f"{DATA}/coco"
DATA_LOGS = f"data/logs/{DATA_NAME}"
GPUS = config["gpus_per_job"]
EXP = None if OWN_DATA else experiments.Experiments(config)
TABLES = f"{R}/tables"
# The tables bana_core.claims reads, as far as this config builds them (Table 4 only with COCO);
# what each further seed builds (config `seeds`).
CLAIM_TABLES = [] if OWN_DATA else [s.name for s in tables.tables_of(EXP) if s.name in claim_specs.CLAIM_TABLES]


wildcard_constraints:
    archive="voc_trainval|sbd|coco_train|coco_annotations",
    clf=experiments.CLASSIFIER_RE,
    gen=r"\d+",
    split="train_aug|train|val",
    variant="std|nou0|agnostic",
    shard=r"\d+",
    model=experiments.SEGMENTER_RE,
    segsplit="val|test",


def voc_stamp():
    """The file whose existence means VOC trainval is in place."""
    return f"{DATA}/synthetic_summary.json" if SYNTHETIC else f"{DATA}/manifests/voc_trainval.json"


def sbd_stamp():
    return f"{DATA}/synthetic_summary.json" if SYNTHETIC else f"{DATA}/manifests/sbd.json"


def coco_stamps():
    if SYNTHETIC:
        return [f"{DATA}/synthetic_summary.json"]
    return [f"{DATA}/manifests/coco_train.json", f"{DATA}/manifests/coco_annotations.json"]


def voc_test_stamp():
    return f"{DATA}/synthetic_summary.json" if SYNTHETIC else f"{DATA}/manifests/voc_test.json"


def script_code(name):
    """A rule's `code` param: content hash of the bana_core files workflow_scripts/<name>.py runs,
    derived from its imports (bana_core.code_versions.code_version); tests check that `name`
    is the rule's own script."""
    return code_version(Path(workflow.basedir) / "workflow_scripts" / f"{name}.py")


@functools.cache
def _published():
    import yaml

    with open(workflow.source_path("../config/paper_results.yaml")) as f:
        return yaml.safe_load(f)


def published_results(table):
    """The published numbers of one table (config/paper_results.yaml, read once)."""
    return _published().get(table, {})


def paper_results(table):
    """The published numbers of one table, when the config asks to show them beside ours."""
    return published_results(table) if config["show_paper_results"] else {}


def split_file(split):
    return f"{VOC}/ImageSets/Segmentation/{split}.txt"


def split_input(split):
    """What makes a split list exist: build_train_aug for train_aug, the dataset itself otherwise."""
    if split == "train_aug":
        return split_file(split)
    return voc_test_stamp() if split == "test" else voc_stamp()


IMAGENET_HUB = "data/imagenet"  # torch hub layout: checkpoints/<torchvision's file name>


def imagenet_checkpoint(net, depth=None):
    """The file rule imagenet_weights fetches for one backbone (torchvision's own file name)."""
    url = imagenet_url(net, depth)
    return f"{IMAGENET_HUB}/checkpoints/{url.rsplit('/', 1)[-1]}"


def pretrained_input(setting, net, depth=None):
    """A `pretrained: pretrain` setting depends on the run's pretrained backbone: trained here
    (rule pretrain_backbone) or the package's (rule shipped_backbone, `pretrain.weights`); the
    run's own (seeds[0]'s) for every seed, as ImageNet weights are shared by real experiments' seeds."""
    if setting == "imagenet":  # fetched on the submitting host (rule imagenet_weights), read by the job
        return [imagenet_checkpoint(net, depth)]
    if setting != "pretrain":
        return []
    name = "shipped" if config["pretrain"]["weights"] == "shipped" else "backbone"
    return [f"{RUN_DIR}/pretrain/{net}/{name}.pt"]


def classifier_train_split(wc):
    _, _, trainset = experiments.parse_classifier(wc.clf)
    return experiments.train_split(trainset)


def segmenter_pretrained(wc):
    arch = experiments.parse_segmenter(wc.model).arch
    setting = config["stage3"]["arch"][arch].get("pretrained")
    return pretrained_input(setting, "vgg" if arch == "v1" else "resnet", config["stage3"]["arch"][arch].get("depth"))


def segmenter_labels(wc):
    """What a segmenter trains on: the pseudo labels' index, or for full supervision the
    train_aug split (its ground truth; no stage 1 or 2 needed)."""
    if experiments.parse_segmenter(wc.model).full_supervision:
        return split_file("train_aug")
    return f"{R}/pseudo_labels/{EXP.training_labels().path}/index.json"


def segmentation_split(wc):
    return split_input(wc.segsplit)


def pl_eval(label_set):
    return f"{R}/{label_set.eval_file}"


def all_targets():
    """Every table of this config (bana_core.tables.TABLES), the claims and checks, the figures, a
    training curve per segmenter the tables score, the test-set archives of the NAL segmenters
    when there are test images, and with several seeds the claim tables over seeds."""
    targets = [f"{TABLES}/{spec.name}.{ext}" for spec in tables.tables_of(EXP) for ext in ("csv", "md")]
    targets += [
        f"{TABLES}/health_checks.csv",
        f"{TABLES}/claims.csv",
        f"{R}/figures/pseudo_labels.png",
        f"{R}/figures/fig3_lambda_damp.png",
    ]
    targets += [f"{R}/figures/training/{m}.png" for m in tables.needed_segmenters(EXP)]
    if FURTHER_SEEDS:  # the claim tables over seeds (rules/tables.smk, seed_table)
        targets += [f"{TABLES}/seeds/{t}.{ext}" for t in CLAIM_TABLES for ext in ("csv", "md")]
    if EXP.test_images:  # real VOC test images need dataset.voc_test_archive
        targets += [
            f"{R}/segmenters/{m}/{m}_comp6_test_cls.tar.gz"
            for (a, loss), m in EXP.table5_models().items()
            if LOSSES[loss].test
        ]
    return targets


def seed_table_csv(seed, table):
    """One claim table's CSV of one seed of this run: seeds[0]'s is the run's own."""
    folder = TABLES if seed == config["seeds"][0] else f"{seeds.seed_run_dir(R, seed)}/tables"
    return f"{folder}/{table}.csv"


def seed_tables(seed):
    """The claim tables' CSVs of one seed of this run."""
    return [seed_table_csv(seed, t) for t in CLAIM_TABLES]


# --- a user's own boxes (dataset.source: local; rules/own_data.smk) ---

OWN = f"{DATA}/own"  # the internal layout (bana_core.data.own): VOC2012/, instances.json, dataset.json
OWN_LOCAL = config["dataset"].get("local") or {}
OWN_SCORED = OWN_LOCAL.get("masks", False)
N_OWN_SHARDS = config["stage2"]["n_shards"]
OWN_SHARDS = f"{R}/masks_shards"
# stage3.segmenter (e.g. v1-nal): a DeepLab trained on both pseudo labels, its masks beside stage 2's
OWN_SEGMENTER = (config.get("stage3") or {}).get("segmenter") if OWN_DATA else None
OWN_SEG_DIR = f"{R}/segmenter"


def own_targets():
    """The masks, their overlay figure, with stage3.segmenter its masks, and with ground truth the
    score table."""
    targets = [f"{R}/masks", f"{R}/figures/masks.png"]
    if OWN_SEGMENTER:
        targets.append(f"{R}/segmenter_masks")
    if OWN_SCORED:
        targets += [f"{TABLES}/own_masks.csv", f"{TABLES}/own_masks.md"]
    return targets


def own_source_files():
    """The user's files that list the images and boxes (the JSON; the split list and its XMLs):
    an edit to one rebuilds the layout. The list is read leniently here; rule own_dataset checks it."""
    if OWN_LOCAL["layout"] == "coco":
        return [OWN_LOCAL["annotations"]]
    split = Path(OWN_LOCAL["root"]) / "ImageSets" / "Main" / f"{OWN_LOCAL['split']}.txt"
    ids = dict.fromkeys(split.read_text().split()) if split.is_file() else {}
    xmls = [f"{OWN_LOCAL['root']}/Annotations/{i}.xml" for i in ids if i.isprintable() and "/" not in i]
    return [str(split), *(x for x in xmls if Path(x).is_file())]


def own_segmenter_shards():
    """The segmenter's mask shards (none without stage3.segmenter)."""
    return expand(f"{OWN_SEG_DIR}/shards/{{shard}}", shard=range(N_OWN_SHARDS)) if OWN_SEGMENTER else []


def own_segmenter_pretrained():
    """The stage-3 backbone's weights, as for the paper's segmenters (segmenter_pretrained)."""
    arch = experiments.parse_segmenter(OWN_SEGMENTER).arch
    block = config["stage3"]["arch"][arch]
    return pretrained_input(block.get("pretrained"), "vgg" if arch == "v1" else "resnet", block.get("depth"))


def own_pretrained():
    """imagenet: the fetched checkpoint; a path: that file (an edit retrains); null: nothing."""
    setting = config["stage1"]["backbone"]["pretrained"]
    if setting is None:
        return []
    return pretrained_input(setting, "vgg") if setting == "imagenet" else [setting]
