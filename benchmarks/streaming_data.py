"""Memory and speed of streamed data against the in-memory path, as the data set grows.

    python benchmarks/streaming_data.py make --num 500000 --out runs/streaming-data
    python benchmarks/streaming_data.py measure --data runs/streaming-data --sizes 50000,500000

``make`` writes Fashion-MNIST garments (each copy shifted by a few pixels and maybe mirrored, so no two
files are the same image) as 32×32 PNGs in WebDataset tar shards of 10,000. ``measure`` trains the
``fashion-mnist-demo`` U-Net for a few steps on the first N images, streamed (``data.streaming``, 2
DataLoader workers) and in memory (every image decoded first), in a child process whose memory is
sampled every 0.1 s: the peak of the summed proportional set size (PSS: pages shared by a process and
its forked workers are counted once) of the process and its workers. Throughput is the training
images per second the run logs after its first 10 steps. Writes results/streaming_data.{json,md}.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
from common import write_results
from PIL import Image

from ddpm.data import load_fashion_mnist

SHARD = 10_000


def make(num: int, out: Path) -> None:
    garments = load_fashion_mnist(split="train", image_size=32).images[:, 0].numpy()
    g = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    for s in range(0, num, SHARD):
        path = out / f"shard-{s // SHARD:06d}.tar"
        if path.is_file():
            continue
        tmp = path.with_suffix(".tmp")
        with tarfile.open(tmp, "w") as tar:
            for i in range(s, min(s + SHARD, num)):
                image = np.roll(garments[i % len(garments)], tuple(g.integers(-3, 4, 2)), axis=(0, 1))
                if g.random() < 0.5:
                    image = image[:, ::-1]
                buffer = io.BytesIO()
                Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
                info = tarfile.TarInfo(f"{i:07d}.png")
                info.size = buffer.tell()
                buffer.seek(0)
                tar.addfile(info, buffer)
        tmp.rename(path)
        print(f"{path.name}: {min(s + SHARD, num)} images", flush=True)


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _pss_mb(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run_training(shards: Path, streaming: bool, steps: int, out: Path) -> dict:
    cmd = [
        sys.executable, "-m", "ddpm", "train", "--config", "fashion-mnist-demo", "--out", str(out),
        "--data.dataset", "folder", "--data.path", str(shards), "--data.channels", "1",
        "--data.streaming", str(streaming).lower(), "--data.workers", "2",
        "--train.steps", str(steps), "--train.log_every", "10", "--train.sample_every", "0",
        "--train.checkpoint_every", str(steps), "--train.num_threads", "2", "--no-progress",
    ]  # fmt: skip
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0]

    def watch():
        while child.poll() is None:
            peak[0] = max(peak[0], _pss_mb(child.pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output = child.communicate()[0]
    watcher.join()
    if child.returncode:
        raise SystemExit(f"training failed:\n{output[-2000:]}")
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {
        "peak_pss_mb": peak[0],
        "images_per_second": float(np.mean([r["images_per_second"] for r in rows[1:]])),
        "wall_seconds": time.perf_counter() - start,
    }


def measure(data: Path, sizes: list[int], steps: int, work: Path) -> None:
    shards = sorted(data.glob("shard-*.tar"))
    results = []
    for size in sizes:
        subset = work / f"first-{size}"
        subset.mkdir(parents=True, exist_ok=True)
        for shard in shards[: -(-size // SHARD)]:
            link = subset / shard.name
            if not link.exists():
                link.symlink_to(shard.resolve())
        for streaming in (True, False):
            out = work / f"run-{size}-{'streamed' if streaming else 'memory'}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            r = {"images": size, "path": "streamed" if streaming else "in memory"}
            r.update(run_training(subset, streaming, steps, out))
            print(r, flush=True)
            results.append(r)
    lines = [
        f"`fashion-mnist-demo`, {steps} steps of 64 on 2 threads (+2 DataLoader workers when streamed), "
        "32×32 PNGs in WebDataset shards; peak PSS of the training process and its workers. Nothing "
        "else ran on the machine unless stated in the JSON.",
        "",
        "| images on disk | path | peak memory (MB) | training images / s | wall (s) |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['images']:,} | {r['path']} | {r['peak_pss_mb']:.0f} | {r['images_per_second']:.1f} | "
            f"{r['wall_seconds']:.0f} |"
        )
    write_results("streaming_data", {"steps": steps, "runs": results}, lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--num", type=int, default=500_000)
    m.add_argument("--out", type=Path, default=Path("runs/streaming-data"))
    r = sub.add_parser("measure")
    r.add_argument("--data", type=Path, default=Path("runs/streaming-data"))
    r.add_argument("--sizes", default="50000,500000")
    r.add_argument("--steps", type=int, default=60)
    r.add_argument("--work", type=Path, default=Path("runs/streaming-measure"))
    args = p.parse_args()
    if args.command == "make":
        make(args.num, args.out)
    else:
        measure(args.data, [int(s) for s in args.sizes.split(",")], args.steps, args.work)


if __name__ == "__main__":
    main()
