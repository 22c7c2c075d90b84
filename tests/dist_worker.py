"""One rank of the distributed tests (tests/test_distributed.py), started by ``torchrun``.

    torchrun --nproc-per-node 2 tests/dist_worker.py JOB CIFAR_DIR OUT [N_PROBE]

Jobs:
  record  train BaseCNN×¼ under DDP for 5 steps (each rank its own half of every batch),
          recording every 2 steps; rank 0 then saves the final weights to OUT/final.pt
  die1    as record, but rank 1 dies (os._exit) just before the second recording
  die0    as record, but rank 0 is killed (SIGKILL) half way through writing the second snapshot
  loader  cv.analyze of a torch DataLoader (every rank reads it, each runs every 2nd batch);
          (each rank builds its own random weights: rank 0's are analysed); rank 0 saves the
          snapshot and its weights to OUT
"""

from __future__ import annotations

import os
import signal
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import cnnvis_gl as cv
from cnnvis_gl.data import open_data
from cnnvis_gl.models import build_model
from cnnvis_gl.run import store


def main() -> None:
    job, cifar, out = sys.argv[1], sys.argv[2], sys.argv[3]
    n_probe = int(sys.argv[4]) if len(sys.argv) > 4 else 101
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if job == "loader":
        model = build_model("basecnn-x0.25")  # (unseeded: each rank's own random weights)
        snap = cv.analyze(model, loader(cifar, n_probe), classes=CLASSES, k=4, progress=False)
        assert (snap is None) == (rank != 0)
        if rank == 0:
            snap.save(out, 0)
            torch.save(model.state_dict(), os.path.join(out, "weights.pt"))
        dist.destroy_process_group()
        return
    torch.manual_seed(0)  # the same initial weights on every rank
    model = DistributedDataParallel(build_model("basecnn-x0.25"))
    train = open_data(f"cifar10:{cifar}", "train").subset(160)
    probe = open_data(f"cifar10:{cifar}", "test").subset(n_probe)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = list(train.batches(32))
    with cv.Recorder(model, probe, out, every=2, k=4, batch_size=16) as rec:
        for step in range(5):
            x, y, _ = batches[step]
            x, y = x[rank::world], y[rank::world]  # this rank's half of the global batch
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if job == "die0" and rank == 0 and step == 2:
                _die_while_writing(out)
            if job == "die1" and rank == 1 and step == 2:
                os._exit(3)  # after training step 2, before its recording
            rec.step(step, train_loss=loss.item())
    if rank == 0:
        torch.save(rec.model.state_dict(), os.path.join(out, "final.pt"))
    dist.destroy_process_group()


CLASSES = [f"c{i}" for i in range(10)]


def loader(cifar: str, n: int) -> torch.utils.data.DataLoader:
    """A plain torch DataLoader over the first n CIFAR-10 test images (batches of 16)."""
    x, y, _ = next(open_data(f"cifar10:{cifar}", "test").subset(n).batches(n))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def _die_while_writing(out: str) -> None:
    """SIGKILL this process after the first array file of the next snapshot is written."""
    import time

    import numpy as np

    while store.list_steps(out) != [0]:  # the step-0 snapshot is on disk
        time.sleep(0.05)

    save = np.save

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    store.np.save = save_then_die


if __name__ == "__main__":
    main()
