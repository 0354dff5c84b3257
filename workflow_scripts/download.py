"""Entry point of rule download: fetch, verify and extract one archive."""
from pathlib import Path

from bana_core.data.download import fetch_and_extract
from bana_core.io import write_json
from bana_core.script_runner import run_script


def main(smk):
    data = Path(smk.params.data_dir)
    spec = dict(smk.params.spec)
    manifest = fetch_and_extract(spec, data / "downloads", data / spec.get("extract_to", "."))
    write_json(smk.output[0], manifest)


run_script(snakemake, main)  # noqa: F821
