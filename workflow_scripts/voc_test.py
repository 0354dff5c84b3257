"""Entry point of rule voc_test: extract a VOC 2012 test archive the user downloaded."""
from pathlib import Path

from bana_core.data.download import extract
from bana_core.errors import ConfigError
from bana_core.io import write_json
from bana_core.script_runner import run_script


def main(smk):
    archive = smk.params.archive
    if not archive:
        raise ConfigError(
            "the VOC 2012 test images are needed here but config key 'dataset.voc_test_archive' is null. "
            "They cannot be downloaded without a login: register at the PASCAL VOC evaluation server, "
            "download VOC2012test.tar, and set dataset.voc_test_archive to its path."
        )
    if not Path(archive).is_file():
        raise ConfigError(f"config key 'dataset.voc_test_archive': {archive} does not exist")
    entries = extract(Path(archive), Path(smk.params.data_dir))
    write_json(smk.output[0], {"archive": str(archive), "entries": entries})


run_script(snakemake, main)  # noqa: F821
