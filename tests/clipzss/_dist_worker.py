"""Worker of the 2-process GLM test (gloo on CPU); imported by the spawned processes."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def glm_worker(rank: int, world: int, init_file: str, feats: torch.Tensor, cls: torch.Tensor, out: str) -> None:
    from clipzss.config import GLMConfig
    from clipzss.glm import GlobalLearningModule

    torch.set_num_threads(1)  # forked child: keep OpenMP single-threaded
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        b = feats.shape[0] // world
        local_f = feats[rank * b : (rank + 1) * b].clone().requires_grad_(True)
        glm = GlobalLearningModule(GLMConfig(bank_size=2)).train()
        loss = glm(local_f, cls[rank * b : (rank + 1) * b])
        loss.backward()
        loss2 = glm(local_f.detach(), cls[rank * b : (rank + 1) * b])
        bank = glm.bank.tokens()
        torch.save(
            {"loss": loss.detach(), "grad": local_f.grad, "loss2": loss2.detach(), "bank_rows": bank.shape[0]},
            os.path.join(out, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()
