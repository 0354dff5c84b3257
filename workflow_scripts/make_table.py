"""Entry point of rule table: one table of the report, as its spec in bana_core.tables says."""
from pathlib import Path

from bana_core.errors import BanaError
from bana_core.experiments import Experiments
from bana_core.io import read_json
from bana_core.script_runner import run_script
from bana_core.tables import build_table, table_inputs, write_table


def main(smk):
    name = smk.wildcards.table
    run_dir = Path(smk.output.csv).parent.parent  # <run>/tables/<name>.csv
    files = table_inputs(name, Experiments(smk.params.experiments), run_dir)
    if sorted(map(str, files.values())) != sorted(smk.input):  # the rule's inputs come from the same spec
        raise BanaError(f"table {name}: inputs {list(smk.input)} are not the spec's {list(files.values())}")
    df = build_table(name, {key: read_json(path) for key, path in files.items()}, smk.params.published)
    write_table(df, Path(smk.output.csv).with_suffix(""), title=smk.params.title)


run_script(snakemake, main)  # noqa: F821
