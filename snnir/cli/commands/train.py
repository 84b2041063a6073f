"""Train a model with the torch backend (surrogate-gradient BPTT) and save the trained graph.

The defaults follow the snnTorch quickstart: ``mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)``,
Adam with lr 2e-3, batch 128. Training resumes from ``--checkpoint`` with ``--resume``. The trained
graph (weights, learned beta/threshold) is written to ``--out`` with the training history in its metadata.
"""

from __future__ import annotations

import argparse
import json
import os

from ..common import add_data_arguments, add_import_arguments, load_data, load_model, model_input, positive_int

NAME = "train"
HELP = "train a model on data (torch backend) and save the trained graph"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (.snnir, .yaml, .onnx, .nir)")
    add_import_arguments(parser)
    add_data_arguments(parser, split=False)
    parser.add_argument("--epochs", type=positive_int, default=5, help="epochs (default: 5)")
    parser.add_argument("--batch", type=positive_int, default=128, help="batch size (default: 128)")
    parser.add_argument("--lr", type=float, default=2e-3, help="learning rate (default: 2e-3)")
    parser.add_argument("--optimizer", default="adam", help="adam, adamw, sgd or rmsprop (default: adam)")
    parser.add_argument("--loss", default='{"name": "mse_count_loss", "correct_rate": 0.8, "incorrect_rate": 0.2}',
                        help="loss name or JSON spec (default: mse_count_loss 0.8/0.2)")
    parser.add_argument("--tbptt", type=positive_int, default=None, help="truncated BPTT window in steps")
    parser.add_argument("--out", default=None, help="trained graph (default: <model>_trained.snnir)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint written after every epoch")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --checkpoint (--epochs counts the epochs already trained)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="shuffling seed (default: 0)")


def _loss_spec(text: str):
    text = text.strip()
    return json.loads(text) if text.startswith("{") else text


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_epoch(row: dict) -> None:
    """One line per epoch, as it ends (above the progress bar)."""
    from tqdm.auto import tqdm

    tqdm.write(f"epoch {row['epoch'] + 1}: loss {row['loss']:.4f}, train accuracy {row['accuracy'] * 100:.2f}%, "
               f"test accuracy {row['val_accuracy'] * 100:.2f}% ({row['time']:.1f} s)")


def _resume_note(checkpoint, epochs: int) -> str:
    """Where ``--resume`` starts: after the checkpoint's epochs, or from scratch without one."""
    if not checkpoint.exists():
        return f"no checkpoint at {checkpoint} yet: starting from epoch 1 (it is written after every epoch)"
    from ...backends.pytorch import checkpoint_epochs

    done = checkpoint_epochs(checkpoint)
    if done >= epochs:
        return f"{checkpoint} holds {_count(done, 'epoch')} already, --epochs {epochs}: nothing left to train"
    return f"resuming from {checkpoint} after {_count(done, 'epoch')}"


def _same_file(first, second) -> bool:
    return os.path.realpath(first) == os.path.realpath(second)


def _check_outputs(args: argparse.Namespace, out) -> None:
    """Refuse, before training, outputs that could not be written after it (a missing directory, a
    read-only file...) and a checkpoint that would overwrite the model or the trained graph."""
    from ...errors import InputError
    from ...formats import check_save
    from ...formats.atomic import check_writable

    check_save(out)
    if args.checkpoint is None:
        return
    for other, flag in ((args.model, "the model"), (out, "--out")):
        if _same_file(args.checkpoint, other):
            raise InputError(f"--checkpoint {args.checkpoint} is {flag}: it would be overwritten after every epoch; "
                             f"name another file")
    check_writable(args.checkpoint)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...compiler import compile as compile_graph
    from ...errors import InputError
    from ...formats import save
    from ...registry import get_backend

    get_backend("torch")  # a clear error naming the extra when torch is missing
    from ...backends.pytorch import evaluate, fit

    graph = load_model(args, args.model)
    dataset = load_data(args, graph)
    x, y = dataset.x_train, dataset.y_train
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    if args.checkpoint is None and args.resume:
        raise InputError("--resume needs --checkpoint")
    out = Path(args.out) if args.out else Path(args.model).with_name(Path(args.model).stem + "_trained.snnir")
    _check_outputs(args, out)
    try:
        loss = _loss_spec(args.loss)
    except json.JSONDecodeError as error:
        raise InputError(f"--loss is not valid JSON: {error}") from None
    # a sequence input: fit cuts the samples-first arrays into batches, then makes them [T, B, ...]
    encode = model_input(args, graph) if graph.nodes[graph.inputs[0]].encoding == "sequence" else None
    model = compile_graph(graph, "torch", device=args.device)
    if not args.quiet:
        print(f"training {graph.name!r} on {len(x)} samples of {dataset.name} for {_count(args.epochs, 'epoch')}")
        if args.resume:
            print(_resume_note(Path(args.checkpoint), args.epochs))
    history = fit(model, (x, y), epochs=args.epochs, loss=loss, optimizer=args.optimizer, lr=args.lr,
                  batch_size=args.batch, tbptt=args.tbptt, seed=args.seed, checkpoint=args.checkpoint,
                  resume=args.resume, progress=not args.quiet, validation=(dataset.x_test, dataset.y_test),
                  on_epoch=None if args.quiet else _print_epoch, encode=encode)
    scores = evaluate(model, (dataset.x_test, dataset.y_test), loss=loss, encode=encode)
    trained = model.to_graph()
    trained = trained.replace(metadata={**trained.metadata, "training": {
        "data": str(args.data), "epochs": args.epochs, "lr": args.lr, "optimizer": args.optimizer,
        "loss": loss, "history": history.to_dict()["epochs"], "test_accuracy": scores["accuracy"]}})
    save(trained, out)
    print(f"test accuracy {scores['accuracy'] * 100:.2f}% on {scores['samples']} samples; wrote {out}")
    return 0
