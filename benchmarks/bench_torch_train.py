"""Training-step time and memory of snnir's torch backend against snnTorch 1.0, side by side.

Workloads (README.md, Benchmarks):
  (a) the seed quickstart CNN: Conv 1->8 k5, MaxPool 2, LIF, Conv 8->16 k5, MaxPool 2, LIF, Flatten,
      Linear 256->10, LIF; beta 0.9, fast_sigmoid; batch 128, T = 25, the same image every step;
  (b) FC 784-512-10 LIF (atan), T = 100, batch 64, Bernoulli(0.1) input spikes; by default fc1 sums
      the weights of the input spike events in the GEMM's own order (bit-identical to it); "b-dense" is
      the same with ``compile(..., event_driven=False)``: fc1's forward pass is the GEMM.
A training step is forward + mse_count_loss(0.8, 0.2) + backward + Adam(lr 2e-3) step. Both networks
start from the same weights (snnir's graph is built from the snnTorch modules). Timings alternate
between the two frameworks and report medians; the torch thread count is fixed and printed.

Memory, per step: "kept" is what the autograd graph holds for the backward pass (distinct saved
storages, parameters and inputs excluded; :func:`snnir.backends.pytorch.saved_bytes`); "minimum" is
the analytic minimum of that: one potential per neuron-step plus, for max pools, the window position
of each maximum (2 bits for a 2x2 window); "peak" is the largest live tensor memory during the step,
from the torch profiler's allocation events.

Allocator: by default glibc's malloc runs with its default settings. ``--keep-freed-memory`` calls
:func:`snnir.backends.pytorch.keep_freed_memory` first (opt-in, process-wide: freed tensors are
recycled instead of being unmapped, which spares snnir's chunk-sized tensors a page fault per 4 KiB
on every step; snnTorch's small per-step tensors are recycled either way). Compare both runs.

Usage: python -m benchmarks.bench_torch_train [--threads 1] [--repeats 9] [--workloads a b] [--keep-freed-memory]
       [--device cuda]
Writes benchmarks/results/torch_train.json (torch_train_tuned.json with --keep-freed-memory; a device other
than the CPU adds its name: torch_train_cuda.json). On CUDA each step is timed until the device is done
(``torch.cuda.synchronize``) and "peak" is the caching allocator's peak above what was live before.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.common import agreement, agreement_failure, check_output, fc_parameters, provenance, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "torch_train.json"
TUNED_RESULTS = RESULTS.with_name("torch_train_tuned.json")


def _array(tensor):
    return tensor.detach().cpu().numpy().copy()


def workload_a(device: str = "cpu"):
    """The seed CNN in snnTorch (the tutorial's nn.Sequential with init_hidden) and in snnir."""
    import snntorch as snn
    from snntorch import surrogate, utils

    import snnir
    from snnir import LIF, Conv2d, Flatten, GraphBuilder, Linear, MaxPool2d

    grad = surrogate.fast_sigmoid()

    def make_net() -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(1, 8, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.9, spike_grad=grad, init_hidden=True),
            nn.Conv2d(8, 16, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.9, spike_grad=grad, init_hidden=True),
            nn.Flatten(), nn.Linear(256, 10), snn.Leaky(beta=0.9, spike_grad=grad, init_hidden=True, output=True),
        )

    torch.manual_seed(0)
    net = make_net()
    steps, batch = 25, 128
    builder = GraphBuilder("quickstart_cnn", num_steps=steps)
    last = builder.chain(
        builder.input("x", (1, 28, 28)),
        ("conv1", Conv2d(weight=_array(net[0].weight), bias=_array(net[0].bias))), ("pool1", MaxPool2d(2)),
        ("lif1", LIF(0.9, surrogate="fast_sigmoid")),
        ("conv2", Conv2d(weight=_array(net[3].weight), bias=_array(net[3].bias))), ("pool2", MaxPool2d(2)),
        ("lif2", LIF(0.9, surrogate="fast_sigmoid")), ("flatten", Flatten()),
        ("fc1", Linear(weight=_array(net[7].weight), bias=_array(net[7].bias))), ("lif3", LIF(0.9, surrogate="fast_sigmoid")),
    )
    builder.output("spikes", last)
    model = snnir.compile(builder.build(), "torch", device=device)
    net.to(device)
    data = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1)).to(device)

    def snntorch_forward():
        utils.reset(net)
        return torch.stack([net(data)[0] for _ in range(steps)])

    hoisted_net = make_net()  # not a deepcopy: snnTorch's utils.reset reaches only neurons made by __init__
    hoisted_net.load_state_dict(net.state_dict())
    hoisted_net.to(device)
    tail = hoisted_net[2:]

    def hoisted_forward():
        """The same network with conv1 + pool1 computed once, before the loop (as snnir does for a direct
        input): the same spikes, a fairer baseline than the tutorial's loop."""
        utils.reset(hoisted_net)
        first = hoisted_net[1](hoisted_net[0](data))
        return torch.stack([tail(first)[0] for _ in range(steps)])

    minimum = steps * batch * (8 * 12 * 12 + 16 * 4 * 4 + 10) * 4 + (steps * batch * 16 * 4 * 4 + batch * 8 * 12 * 12) * 2 / 8
    return dict(name="a", title="seed CNN, B=128, T=25", net=net, snntorch_forward=snntorch_forward, model=model,
                inputs=data, batch=batch, minimum=minimum, hoisted=(hoisted_net, hoisted_forward))


def workload_b(event_driven: bool | None = None, device: str = "cpu"):
    """FC 784-512-10 with Bernoulli(0.1) input spikes over 100 steps (``event_driven``: the compile option)."""
    import snntorch as snn

    import snnir
    from snnir import LIF, GraphBuilder, Linear

    fc1, fc2 = nn.Linear(784, 512), nn.Linear(512, 10)
    weights = fc_parameters()  # default init times a gain, so that both layers fire (benchmarks/common.py)
    with torch.no_grad():
        for name, layer in (("fc1", fc1), ("fc2", fc2)):
            layer.weight.copy_(torch.from_numpy(weights[f"{name}.weight"]))
            layer.bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))
    lif1, lif2 = snn.Leaky(beta=0.9), snn.Leaky(beta=0.9)
    net = nn.ModuleList([fc1, lif1, fc2, lif2])
    steps, batch = 100, 64
    builder = GraphBuilder("fc_784_512_10", num_steps=steps)
    last = builder.chain(
        builder.input("x", (784,), encoding="sequence"),
        ("fc1", Linear(weight=_array(fc1.weight), bias=_array(fc1.bias))), ("lif1", LIF(0.9)),
        ("fc2", Linear(weight=_array(fc2.weight), bias=_array(fc2.bias))), ("lif2", LIF(0.9)),
    )
    builder.output("spikes", last)
    model = snnir.compile(builder.build(), "torch", event_driven=event_driven, device=device)
    net.to(device)
    data = (torch.rand(steps, batch, 784, generator=torch.Generator().manual_seed(1)) < 0.1).float().to(device)

    def snntorch_forward():
        m1, m2, record = lif1.reset_mem(), lif2.reset_mem(), []
        for t in range(steps):
            s1, m1 = lif1(fc1(data[t]), m1)
            s2, m2 = lif2(fc2(s1), m2)
            record.append(s2)
        return torch.stack(record)

    minimum = steps * batch * (512 + 10) * 4
    title = "FC 784-512-10, B=64, T=100" + (", GEMM" if event_driven is False else "")
    return dict(name="b-dense" if event_driven is False else "b", title=title, net=net, snntorch_forward=snntorch_forward,
                model=model, inputs=data, batch=batch, minimum=minimum)


def _peak_bytes(step, device: torch.device) -> int:
    """Largest live tensor memory during ``step()``: from the profiler's allocation/free events on the
    CPU, from the caching allocator's peak statistics (above what was live before) on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    return peak


def measure(work, repeats: int, warmup: int) -> dict:
    """Time training steps of snnTorch, snnir and (on (a)) snnTorch with conv1 hoisted, alternating them
    (each round starts with the next peer), after checking that they compute the same spikes and loss."""
    from snnir.backends.pytorch import mse_count_loss, saved_bytes
    from snntorch import functional as SF

    device = work["model"].device
    targets = (torch.arange(work["batch"]) % 10).to(device)
    # CUDA kernels run asynchronously: a step is timed until the device has finished it
    finish = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    their_loss, our_loss = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2), mse_count_loss(0.8, 0.2)
    model, data = work["model"], work["inputs"]
    forwards = {"snntorch": (work["net"], work["snntorch_forward"], their_loss),
                "snnir": (model, lambda: model(data)["spikes"], our_loss)}
    if "hoisted" in work:
        forwards["snntorch_hoisted"] = (*work["hoisted"], their_loss)
    check = _check_peers(forwards, targets)
    peers = {}
    for label, (module, forward, loss) in forwards.items():
        optimizer = torch.optim.Adam(module.parameters(), lr=2e-3)
        value = (lambda forward=forward, loss=loss: loss(forward(), targets))

        def step(optimizer=optimizer, value=value):
            optimizer.zero_grad(set_to_none=True)
            value().backward()
            optimizer.step()

        peers[label] = (module, value, step)
    for _ in range(warmup):
        for _, _, step in peers.values():
            step()
    finish()  # the warm-up's queued device work is not timed
    labels = list(peers)
    times = {label: [] for label in labels}
    cpu = {label: [] for label in labels}
    for round_ in range(repeats):
        for label in labels[round_ % len(labels):] + labels[: round_ % len(labels)]:
            started, started_cpu = time.perf_counter(), time.process_time()
            peers[label][2]()
            finish()
            times[label].append(time.perf_counter() - started)
            cpu[label].append(time.process_time() - started_cpu)
    medians = {k: statistics.median(v) for k, v in times.items()}
    cpu_medians = {k: statistics.median(v) for k, v in cpu.items()}
    kept = {label: saved_bytes(value, list(module.parameters()) + [data]) for label, (module, value, _) in peers.items()}
    peak = {label: _peak_bytes(step, device) for label, (_, _, step) in peers.items()}
    ratios = [a / b for a, b in zip(times["snntorch"], times["snnir"])]
    result = {
        "workload": work["name"], "title": work["title"], "check": check,
        "step_seconds_median": medians, "step_seconds_all": times,
        "speedup": medians["snntorch"] / medians["snnir"],
        "speedup_per_round": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
        "cpu_seconds_median": cpu_medians,
        "cpu_speedup": cpu_medians["snntorch"] / cpu_medians["snnir"],
        "kept_for_backward_bytes": kept, "analytic_minimum_bytes": work["minimum"],
        "kept_over_minimum": {k: v / work["minimum"] for k, v in kept.items()},
        "peak_bytes": peak,
    }
    if "snntorch_hoisted" in medians:
        result["speedup_vs_hoisted"] = medians["snntorch_hoisted"] / medians["snnir"]
    return result


def _check_peers(forwards: dict, targets: torch.Tensor) -> dict:
    """Before anything is timed: every peer's spikes against snnTorch's (benchmarks/common.py limits) and its
    loss within 1e-5 of snnTorch's, from the same initial weights; raises SystemExit otherwise."""
    with torch.no_grad():
        records = {label: forward() for label, (_, forward, _) in forwards.items()}
        losses = {label: float(loss(records[label], targets)) for label, (_, _, loss) in forwards.items()}
    reference = records["snntorch"].cpu().numpy()
    check = {"losses": losses}
    for label, record in records.items():
        if label == "snntorch":
            continue
        check[label] = stats = agreement(record.cpu().numpy(), reference)
        failure = agreement_failure(label, stats)
        if failure is None and abs(losses[label] - losses["snntorch"]) > 1e-5:
            failure = f"{label}: loss {losses[label]} against snnTorch's {losses['snntorch']}"
        if failure:
            raise SystemExit(f"FAILED: the peers do not compute the same thing: {failure}")
    return check


def _table(results: list[dict], threads: int, malloc: str, device: str) -> str:
    lines = [f"torch {torch.__version__}, device {device}, {threads} thread(s), malloc: {malloc}, medians of alternating runs "
             "(wall-clock; the range of the per-round ratios; CPU time of this process for the last ratio)", ""]
    header = (f"{'workload':<44}{'snnTorch ms':>12}{'snnir ms':>10}{'speedup':>9}{'per round':>12}{'vs hoisted':>12}"
              f"{'CPU-time':>10}{'kept MB (snnTorch/snnir)':>27}{'snnir/min':>10}{'peak MB (snnTorch/snnir)':>27}")
    lines.append(header)
    for r in results:
        tag = f"({r['workload']})"
        ms = r["step_seconds_median"]
        kept, peak, rounds = r["kept_for_backward_bytes"], r["peak_bytes"], r["speedup_per_round"]
        hoisted = f"{r['speedup_vs_hoisted']:.2f}x" if "speedup_vs_hoisted" in r else ""
        lines.append(
            f"{tag:<11}{r['title']:<33}{ms['snntorch'] * 1e3:>12.1f}{ms['snnir'] * 1e3:>10.1f}{r['speedup']:>8.2f}x"
            f"{rounds['min']:>6.2f}-{rounds['max']:.2f}x{hoisted:>12}{r['cpu_speedup']:>9.2f}x"
            f"{kept['snntorch'] / 1e6:>15.1f} / {kept['snnir'] / 1e6:<9.1f}{r['kept_over_minimum']['snnir']:>10.3f}"
            f"{peak['snntorch'] / 1e6:>15.1f} / {peak['snnir'] / 1e6:<9.1f}"
        )
        if "snntorch_hoisted" in ms:
            lines.append(f"{'':<11}{'snnTorch with conv1 + pool1 hoisted':<33}{ms['snntorch_hoisted'] * 1e3:>12.1f}"
                         f"{'':>10}{'':>9}{'':>12}{'':>12}{'':>10}{kept['snntorch_hoisted'] / 1e6:>15.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workloads", nargs="+", default=["a", "b", "b-dense"], choices=["a", "b", "b-dense"])
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="tune glibc malloc first (snnir.backends.pytorch.keep_freed_memory; process-wide)")
    parser.add_argument("--device", default="cpu", help="torch device of both frameworks (default cpu; e.g. cuda)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="3 rounds after 1 warm-up step (a smoke test, not figures)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    try:
        import snntorch  # noqa: F401
    except ImportError:
        print("snnTorch is not installed: nothing to compare against (pip install 'snnir[snntorch]')")
        return 0
    torch.set_num_threads(args.threads)
    malloc = "default"
    if args.keep_freed_memory:
        from snnir.backends.pytorch import keep_freed_memory

        malloc = "keep_freed_memory()" if keep_freed_memory() else "default (keep_freed_memory needs glibc)"
    out = args.out or (TUNED_RESULTS if args.keep_freed_memory else RESULTS)
    if args.device != "cpu" and args.out is None:
        out = out.with_name(f"{out.stem}_{torch.device(args.device).type}.json")
    check_output(out)  # before minutes of measuring
    builders = {"a": lambda: workload_a(args.device), "b": lambda: workload_b(device=args.device),
                "b-dense": lambda: workload_b(event_driven=False, device=args.device)}
    results = [measure(builders[name](), args.repeats, args.warmup) for name in args.workloads]
    print(_table(results, args.threads, malloc, args.device))
    payload = {"benchmark": "torch_train", "environment": provenance(), "device": args.device, "threads": args.threads,
               "malloc": malloc, "results": results}
    write_results(out, payload, indent=2)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
