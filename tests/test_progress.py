"""Progress in rule logs (bana_core.progress): a log line about every tenth of the work, a bar
only on a terminal."""
from __future__ import annotations

import re

import pytest
import torch

from bana_core import progress as progress_module
from bana_core.progress import ProgressLog, progress
from bana_core.train import TrainSpec, train


def test_progress_logs_every_tenth_with_rate_and_eta(caplog, capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    caplog.set_level("INFO", logger="bana.progress")
    assert list(progress(range(20), desc="pseudo labels 0")) == list(range(20))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10  # 2, 4, ..., 20
    assert lines[0].startswith("pseudo labels 0: image 2/20 (10 %), ")
    assert lines[-1].startswith("pseudo labels 0: image 20/20 (100 %), ")
    assert all(re.search(r"[0-9.]+ images/s, ETA (\d+:\d\d:\d\d|\?)$", line) for line in lines)
    assert "pseudo labels 0" not in capsys.readouterr().err  # no bar when stderr is not a terminal
    caplog.clear()
    list(progress(range(5), desc="quiet", enabled=False))
    assert not caplog.records


def test_progress_log_ends_on_the_last_step_and_counts_from_a_resume(caplog):
    caplog.set_level("INFO", logger="bana.progress")
    p = ProgressLog("stage3 v1-nal", 25, start=10, every=10)
    for done in range(11, 26):
        p.update(done, loss="0.5")
    lines = [r.getMessage() for r in caplog.records]
    assert [re.search(r"iteration (\d+)/25", m).group(1) for m in lines] == ["20", "25"]
    assert "loss 0.5" in lines[0] and "ETA 0:00:00" in lines[-1]


def test_training_logs_progress_lines(caplog):
    caplog.set_level("INFO", logger="bana.progress")
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def batches(start):
        for _ in range(start, 40):
            yield {"x": torch.ones(4, 2)}

    def step(m, batch):
        return m(batch["x"]).pow(2).mean(), {}

    train(model, optimizer, batches, step, TrainSpec(iterations=40, lr=0.1, lr_factor=lambda it: 1.0, desc="toy"),
          torch.device("cpu"))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("toy: ")]
    assert len(lines) == 20  # every twentieth of the run
    assert lines[-1].startswith("toy: iteration 40/40 (100 %), loss ") and "lr 1.00e-01" in lines[-1]


@pytest.mark.parametrize("total", [1, 3])
def test_short_loops_log_each_step(caplog, total):
    caplog.set_level("INFO", logger="bana.progress")
    list(progress(range(total), desc="crf v1"))
    assert len(caplog.records) == total
