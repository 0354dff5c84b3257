"""Fixtures shared by the end-to-end tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from workflow_env import copy_workflow, snakemake


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny config run through Snakemake once per session (every rule, every table), in a
    private copy of the workflow. Tests that change it restore what they change; a test that
    extends it works on its own copy (tests/test_seeds.py)."""
    work = copy_workflow(tmp_path_factory.mktemp("workflow"))
    old = os.umask(0o022)  # tests/test_workflow.py's permission check expects 0644 / 0755
    try:
        snakemake(work)
    finally:
        os.umask(old)
    return work
