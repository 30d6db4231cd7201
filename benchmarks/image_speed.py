"""Seconds per image through imagegen.Renderer (diffusers StableDiffusion3Pipeline).

    python benchmarks/image_speed.py [--images 4] [--steps 40] [--batch-size 1 4] [--json]
    python benchmarks/image_speed.py --model /path/to/sd3.5-medium --size 1024 --device cuda

Default: the tiny random SD3.5-shaped pipeline from ``imagegen.testing`` (same code path as real
weights: MMDiT-X transformer, 16-channel VAE, two CLIP encoders + T5) at 64×64 on the CPU. It
measures the pipeline overhead (scheduler, text encoding, VAE decode, PNG metadata), not the
cost of the real 2.5B-parameter model, which needs a GPU and the real weights (``--model``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from imagegen import Renderer
from imagegen.testing import build_tiny_sd3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="diffusers folder or Hub id (default: tiny random)")
    parser.add_argument("--size", type=int, default=None, help="width = height (64 tiny)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=4, help="images per measurement")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_sd3(Path(tmp) / "tiny-sd3"))
        size = args.size or (64 if args.model is None else 1024)
        start = time.perf_counter()
        renderer = Renderer(model, device=args.device)
        load_s = time.perf_counter() - start
        settings = {"steps": args.steps, "width": size, "height": size}
        renderer.render("warm-up", seed=0, **{**settings, "steps": 2})
        rows = []
        for batch in args.batch_size:
            runs = []
            for repeat in range(args.repeats):
                if renderer.device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                renderer.render(
                    "a plaza with EV chargers, golden hour",
                    seed=repeat,
                    num_images=args.images,
                    batch_size=batch,
                    **settings,
                )
                if renderer.device.startswith("cuda"):
                    torch.cuda.synchronize()
                runs.append((time.perf_counter() - start) / args.images)
            rows.append(
                {
                    "batch_size": batch,
                    "s_per_image": statistics.median(runs),
                    "runs": runs,
                }
            )
    report = {
        "model": "tiny random SD3.5-shaped pipeline" if args.model is None else args.model,
        "device": renderer.device,
        "dtype": str(renderer.dtype).removeprefix("torch."),
        "threads": args.threads,
        "size": size,
        "steps": args.steps,
        "images_per_run": args.images,
        "load_s": load_s,
        "results": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{report['model']} · {report['device']} {report['dtype']} · {size}×{size} · "
        f"{args.steps} steps · {args.threads} thread(s) · load {load_s:.1f}s"
    )
    for row in rows:
        print(
            f"  batch {row['batch_size']}: {row['s_per_image']:.3f} s/image (median of "
            f"{args.repeats} runs of {args.images} images)"
        )


if __name__ == "__main__":
    main()
