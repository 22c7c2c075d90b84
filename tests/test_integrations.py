"""The training-library adapters record real (tiny) training runs: PyTorch Lightning's
``Trainer`` with :class:`CnnvisCallback` and Hugging Face's ``Trainer`` with
:class:`CnnvisTrainerCallback`, on real CIFAR-10 images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

import cnnvis_gl as cv
from cnnvis_gl.data import open_data
from cnnvis_gl.models import build_model
from cnnvis_gl.run.recorder import read_scalars

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(cifar_dir):
    train = open_data(f"cifar10:{cifar_dir}", "train").subset(160)
    probe = open_data(f"cifar10:{cifar_dir}", "test").subset(64)
    x, y, _ = next(train.batches(160))
    return x, y, probe


def _same(recorded, direct):
    assert sorted(recorded.keys()) == sorted(direct.keys())
    for key in direct.keys():
        np.testing.assert_allclose(recorded[key], direct[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_lightning_callback_records_a_training_run(data, tmp_path):
    from cnnvis_gl.integrations.lightning import CnnvisCallback, pl

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = build_model("basecnn-x0.25")

        def training_step(self, batch, i):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def validation_step(self, batch, i):
            x, y = batch
            self.log("val_loss", F.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    x, y, probe = data
    torch.manual_seed(0)
    lit = Lit()
    run = tmp_path / "run"
    trainer = pl.Trainer(
        max_steps=5,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        val_check_interval=4,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        callbacks=[CnnvisCallback(probe, run, every=2, module="net", k=4, batch_size=32)],
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    trainer.fit(lit, loader, DataLoader(TensorDataset(x[:32], y[:32]), batch_size=32))

    rec = cv.open_run(run)
    assert rec.steps() == [0, 2, 4]
    assert rec.manifest["model"] == type(lit.net).__name__
    scalars = read_scalars(run)
    assert [r["step"] for r in scalars if "train_loss" in r] == [0, 1, 2, 3, 4]
    assert any("val_loss" in r for r in scalars)
    last = rec.latest()
    assert set(last.meta["grad_norms"]) == {l.name for l in rec.graph.layers if l.weighted}
    assert all(v > 0 for v in last.meta["grad_norms"].values())
    # the last snapshot is the trained network's, measured on the probe images
    _same(last, cv.analyze(lit.net, probe, k=4, progress=False))


class _Pixels(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def test_huggingface_callback_records_a_trainer_run(data, tmp_path):
    from cnnvis_gl.integrations.huggingface import CnnvisTrainerCallback, transformers

    x, y, probe = data
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic", num_labels=10
    )
    model = transformers.ResNetForImageClassification(config)
    run = tmp_path / "run"
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=5,
        per_device_train_batch_size=32,
        learning_rate=0.01,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    callback = CnnvisTrainerCallback(probe, run, every=2, k=4, batch_size=32)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=_Pixels(x, y), callbacks=[callback]
    )
    trainer.train()

    rec = cv.open_run(run)
    assert rec.steps() == [0, 2, 4]
    assert rec.manifest["model"] == "ResNetForImageClassification"
    assert [u.name for u in rec.graph.units][-1] == "classifier.1"
    scalars = read_scalars(run)
    assert [r["step"] for r in scalars if "loss" in r] == [0, 1, 2, 3, 4]
    last = rec.latest()
    # gradient norms of the recorded step, taken before the Trainer cleared them
    assert set(last.meta["grad_norms"]) == {l.name for l in rec.graph.layers if l.weighted}
    assert all(v > 0 for v in last.meta["grad_norms"].values())
    assert last.meta["probe_error"] is not None  # the output's logits were scored
    _same(last, cv.analyze(model, probe, k=4, progress=False))
