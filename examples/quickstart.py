"""The snnTorch quickstart (docs/quickstart.rst), step by step, with snnir.

snnTorch builds the networks as nn.Modules and loops over time by hand; with snnir the same networks are
declared once (a Python builder for the CNN, the layer-stack API for the FC net), trained with BPTT by
the torch backend, and then run anywhere (numba, ONNX) with the same spikes.

    python examples/quickstart.py                 # scikit-learn's digits, offline (resized to 28x28)
    python examples/quickstart.py --mnist DIR     # the real MNIST, from its four IDX files in DIR
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import snnir
from snnir import LIF, Conv2d, Flatten, Linear, MaxPool2d, Uniform
from snnir.backends.pytorch import evaluate, fit
from snnir.data import load_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", metavar="DIR", help="directory with the MNIST IDX files (default: digits)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 1 on MNIST (as the tutorial), 12 on digits")
    parser.add_argument("--limit", type=int, default=None, help="train on at most this many samples")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    # -- DataLoading: batch 128, images in [0, 1] -------------------------------------------------
    batch_size = 128
    data = load_dataset(args.mnist or "digits", (1, 28, 28))
    x_train, y_train = data.x_train[: args.limit], data.y_train[: args.limit]
    epochs = args.epochs or (1 if args.mnist else 12)
    print(data)

    # -- Define the network: the quickstart CNN ----------------------------------------------------
    # snnTorch: nn.Sequential(nn.Conv2d(1, 8, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.9, spike_grad=fast_sigmoid(),
    # init_hidden=True), nn.Conv2d(8, 16, 5), ..., nn.Linear(16*4*4, 10), snn.Leaky(..., output=True))
    beta = 0.9
    lif = lambda: LIF(beta, surrogate="fast_sigmoid")  # noqa: E731 - one neuron spec, three layers
    num_steps = 25
    cnn = snnir.Sequential(
        Conv2d(8, 5), MaxPool2d(2), lif(),
        Conv2d(16, 5), MaxPool2d(2), lif(),
        Flatten(), Linear(10), lif(),
        input_shape=(1, 28, 28), num_steps=num_steps, name="quickstart_cnn",
    )
    print(cnn)

    # -- The forward pass over time, the loss and the optimizer --------------------------------------
    # snnTorch's forward_pass loop is the compiled model itself: model(x) runs all 25 steps.
    # MSE count loss: the correct class should fire 80% of the steps, the others 20%.
    loss = {"name": "mse_count_loss", "correct_rate": 0.8, "incorrect_rate": 0.2}
    adam = {"optimizer": "adam", "lr": 2e-3, "optimizer_options": {"betas": (0.9, 0.999)}}
    model = snnir.compile(cnn, "torch")

    # -- Training loop ---------------------------------------------------------------------------------
    history = fit(model, (x_train, y_train), epochs=epochs, batch_size=batch_size, loss=loss, **adam,
                  progress=not args.quiet)
    for row in history.epochs:
        print(f"CNN epoch {row['epoch'] + 1}: train loss {row['loss']:.2f}, accuracy {row['accuracy'] * 100:.2f}%")
    cnn_accuracy = evaluate(model, (data.x_test, data.y_test))["accuracy"]
    print(f"CNN test set accuracy: {cnn_accuracy * 100:.3f}%\n")

    # -- More control over your model: the FC net with a learnable decay per output neuron ----------
    # snnTorch: fc1 = Linear(784, 300); lif1 = Leaky(beta=0.9)  (shared, not learnable)
    #           fc2 = Linear(300, 10);  lif2 = Leaky(beta=torch.rand(10), learn_beta=True)
    fc = snnir.Sequential(
        Flatten(), Linear(300), LIF(0.9),
        Linear(10), LIF(Uniform(0.0, 1.0), learn_beta=True),
        input_shape=(1, 28, 28), num_steps=num_steps, name="quickstart_fc",
    )
    net = snnir.compile(fc, "torch")
    history = fit(net, (x_train, y_train), epochs=epochs, batch_size=batch_size, loss=loss, **adam,
                  progress=not args.quiet)
    for row in history.epochs:
        print(f"FC epoch {row['epoch'] + 1}: train loss {row['loss']:.2f}, accuracy {row['accuracy'] * 100:.2f}%")
    trained = net.to_graph()
    print(f"Trained decay rate of the first layer: {float(trained.nodes['lif1'].beta):.3f}")
    print(f"Trained decay rates of the second layer: {np.round(trained.nodes['lif2'].beta, 3)}")
    fc_accuracy = evaluate(net, (data.x_test, data.y_test))["accuracy"]
    print(f"FC test set accuracy: {fc_accuracy * 100:.3f}%\n")

    # -- Beyond the tutorial: deploy the trained CNN without torch -----------------------------------
    deployed = snnir.compile(model.to_graph(), "numba")
    agreement = np.mean(deployed.predict(data.x_test) == model.predict(data.x_test))
    print(f"numba predictions agree with torch on {agreement * 100:.2f}% of the test set")


if __name__ == "__main__":
    main()
