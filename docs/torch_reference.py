"""The PyTorch reference for `make bench`'s speed claims: the same networks, batch, optimizer and data,
timed the same way (the fastest epoch after a warm-up one). PyTorch is never a dependency of bp-train:
run this in an environment of its own, e.g.

    python3 -m venv /tmp/torch-env && /tmp/torch-env/bin/pip install torch numpy pandas
    /tmp/torch-env/bin/python docs/torch_reference.py --data train.csv.gz --network cnn --threads 2

It prints one JSON object: seconds per epoch over the 90% of rows bp-train trains on (val_fraction 0.1).
"""

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch
from torch import nn


def network(name: str) -> nn.Module:
    if name == "cnn":  # configs/cnn.yaml
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 10),
        )
    if name == "best-cnn":  # configs/best-cnn.yaml
        return nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 256),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(256, 10),
        )
    if name == "fast-cnn":  # configs/fast-cnn.yaml (pooling before the ReLU, as bp-train builds it)
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 256),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(256, 10),
        )
    if name == "default":  # configs/default.yaml, the textbook's two-layer network
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    if name == "mlp-800-800":  # configs/mlp-800-800.yaml
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 800), nn.ReLU(), nn.Linear(800, 10)
        )
    raise SystemExit(f"unknown network {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--network", default="cnn", choices=["default", "cnn", "best-cnn", "fast-cnn", "mlp-800-800"])
    parser.add_argument("--optimizer", default="adam", choices=["adam", "momentum"], help="the config's optimizer")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument(
        "--weight-decay", type=float, default=0.0, help="L2 on the weights (not the biases), as bp-train applies it"
    )
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs; the first warms up, the fastest of the rest counts"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: the GPU, data on it once")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frame = pd.read_csv(args.data)
    rows = int(round(len(frame) * 0.9))
    x = torch.tensor(frame.drop(columns="label").to_numpy(np.float32)[:rows] / 255).reshape(-1, 1, 28, 28)
    t = torch.tensor(frame["label"].to_numpy(np.int64)[:rows])
    x, t = x.to(args.device), t.to(args.device)
    model = network(args.network).to(args.device)
    finish = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    weights = [p for p in model.parameters() if p.dim() > 1]
    others = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": weights, "weight_decay": args.weight_decay}, {"params": others, "weight_decay": 0.0}]
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(groups, lr=args.lr)
    else:
        optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(args.epochs):
        order = torch.randperm(rows, device=args.device)
        finish()
        start = time.perf_counter()
        for i in range(0, rows, 100):
            batch = order[i : i + 100]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), t[batch])
            loss.backward()
            optimizer.step()
        finish()
        seconds.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "network": args.network,
                "optimizer": args.optimizer,
                "rows": rows,
                "threads": args.threads,
                "device": args.device,
                "seconds_per_epoch": min(seconds[1:] or seconds),
                "epoch_seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
