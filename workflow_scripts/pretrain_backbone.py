"""Entry point of rule pretrain_backbone (demo only)."""
from pathlib import Path

from bana_core.devices import resolve_device
from bana_core.io import write_json
from bana_core.script_runner import run_script
from bana_core.stage1 import pretrain_backbone


def main(smk):
    work = Path(smk.params.work_dir)
    summary = pretrain_backbone(net=smk.wildcards.net, cfg=smk.params.pretrain, backbone_cfg=smk.params.backbone,
                                images_path=Path(smk.input[0]),
                                out=Path(smk.output[0]), work_dir=work, device=resolve_device(smk.params.device),
                                seed=smk.params.seed)
    write_json(work / "summary.json", summary)


run_script(snakemake, main)  # noqa: F821
