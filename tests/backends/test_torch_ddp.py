"""Data-parallel training with torch.distributed: two CPU processes (gloo) train one compiled graph.

Each rank sees different data. After ``backward`` through DistributedDataParallel the gradients must
equal the average of the two ranks' local gradients, identically on both ranks; after several
optimizer steps of :func:`fit` (which gives each rank its share of every batch) both replicas must
hold bit-identical parameters, a scheduler stepped in ``on_epoch`` must have stepped on both ranks, an
empty share of the last batch must not void a rank's history, ``evaluate`` must split the data by
rank only for a DDP model and report every rank the same (reduced) figures, a scheduler reading them
must keep the replicas alike, and a loss that is NaN on one rank must stop every rank.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
distributed = pytest.importorskip("torch.distributed")
if not distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)


def _worker(rank, world, store, report):
    """One rank; run as ``python this_file.py RANK WORLD STORE REPORT`` by the test."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import snnir
    from snnir import LIF, Linear, Sequential
    from snnir.backends.pytorch import TrainingDiverged, evaluate, fit, mse_count_loss

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        graph = Sequential(Linear(12), LIF(0.8, learn_beta=True), Linear(3), LIF(0.85), input_shape=(6,), num_steps=6, seed=3)
        model = snnir.compile(graph, "torch")
        local = snnir.compile(graph, "torch")
        ddp = DistributedDataParallel(model)
        rng = np.random.default_rng(rank)
        x = torch.from_numpy(rng.random((8, 6), dtype=np.float32) * 2)
        y = torch.from_numpy(rng.integers(0, 3, 8))
        loss = mse_count_loss(0.8, 0.2)
        loss(ddp(x)["spikes"], y).backward()
        loss(local(x)["spikes"], y).backward()

        def gathered(tensor):
            parts = [torch.empty_like(tensor) for _ in range(world)]
            dist.all_gather(parts, tensor.contiguous())
            return parts

        checks = {}
        for (name, shared), (_, own) in zip(model.named_parameters(), local.named_parameters()):
            local_grads = gathered(own.grad)
            average = torch.stack(local_grads).mean(0)
            replicas = gathered(shared.grad)
            checks[name] = {
                "averaged": bool(torch.allclose(shared.grad, average, rtol=1e-6, atol=1e-7)),
                "identical": all(torch.equal(replicas[0], r) for r in replicas),
                "nonzero": bool(shared.grad.abs().sum() > 0),
                "ranks_differ_locally": not torch.equal(local_grads[0], local_grads[1]),
            }
        # 33 samples in batches of 16: the last batch has one sample, and rank 1's share of it is empty
        data = np.random.default_rng(7).random((33, 6), dtype=np.float32) * 2
        labels = np.arange(33) % 3
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        history = fit(ddp, (data, labels), epochs=2, batch_size=16, optimizer=optimizer, progress=False,
                      on_epoch=lambda row: schedule.step())  # on every rank, so the replicas stay alike
        same = all(all(torch.equal(p, q) for q in gathered(p.detach())) for p in model.parameters())
        rates = gathered(torch.tensor([optimizer.param_groups[0]["lr"]]))
        finite = gathered(torch.tensor([float(all(v is not None for v in history.loss + history.accuracy))]))
        seen = {"plain": evaluate(model, (data, labels))["samples"], "ddp": evaluate(ddp, (data, labels))["samples"]}
        # a scheduler that reads a metric: the metric must be the same on every rank (reduced over them)
        plateau_optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(plateau_optimizer, patience=0, factor=0.5)
        rows = fit(ddp, (data, labels), epochs=3, batch_size=16, optimizer=plateau_optimizer, progress=False,
                   validation=(data[rank::2], labels[rank::2]), on_epoch=lambda row: plateau.step(row["val_loss"])).epochs
        metrics = gathered(torch.tensor([row["val_loss"] for row in rows] + [row["loss"] for row in rows], dtype=torch.float64))
        plateau_same = all(torch.equal(metrics[0], m) for m in metrics) and all(
            all(torch.equal(p, q) for q in gathered(p.detach())) for p in model.parameters())
        # a loss that stops being finite on one rank stops every rank (the others would hang in backward)
        calls = []

        def diverging(recording, targets):
            calls.append(1)
            value = mse_count_loss(0.8, 0.2)(recording, targets)
            return value * float("nan") if rank == 1 and len(calls) == 2 else value

        try:
            fit(ddp, (data, labels), epochs=1, batch_size=16, loss=diverging, progress=False)
            stopped = False
        except TrainingDiverged:
            stopped = True
        stopped_everywhere = [bool(s) for s in gathered(torch.tensor([float(stopped)]))]
        if rank == 0:
            with open(report, "w") as handle:
                json.dump({"checks": checks, "replicas_identical_after_fit": same, "learning_rates": [float(r) for r in rates],
                           "histories_finite": [bool(f) for f in finite], "samples_evaluated": seen,
                           "plateau_replicas_identical": plateau_same, "diverged_on_every_rank": stopped_everywhere}, handle)
        dist.barrier()  # neither rank tears gloo down while the other may still be talking to it
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_averages_gradients_and_keeps_replicas_identical(tmp_path):
    # Two fresh interpreters (not multiprocessing.spawn, which re-imports the test runner's main module).
    report = tmp_path / "report.json"
    ranks = [
        subprocess.Popen([sys.executable, __file__, str(rank), "2", str(tmp_path / "store"), str(report)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=240)[0] for process in ranks]
    finally:
        for process in ranks:
            process.kill()
    for rank, (process, output) in enumerate(zip(ranks, outputs)):
        assert process.returncode == 0, f"rank {rank} failed:\n{output[-3000:]}"
    result = json.loads(report.read_text())
    for name, check in result["checks"].items():
        assert check["averaged"], f"{name}: DDP gradient is not the average of the ranks' gradients"
        assert check["identical"], f"{name}: ranks hold different gradients"
        assert check["nonzero"], f"{name}: zero gradient, the check would be vacuous"
    assert any(check["ranks_differ_locally"] for check in result["checks"].values()), "both ranks saw the same data"
    assert result["replicas_identical_after_fit"]
    assert result["learning_rates"] == pytest.approx([0.0125, 0.0125]), "on_epoch must run on every rank (a scheduler stepped there)"
    assert result["histories_finite"] == [True, True], "an empty share of the last batch must not void the epoch"
    assert result["samples_evaluated"] == {"plain": 33, "ddp": 33}, "a DDP model's scores cover every rank's share"
    assert result["plateau_replicas_identical"], "metrics must be reduced over the ranks before schedulers read them"
    assert result["diverged_on_every_rank"] == [True, True], "a NaN loss on one rank must stop every rank"


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
