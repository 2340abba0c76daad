"""Benchmark of a video model's VQ-VAE (the latent `predict` works in): held-out round-trip PSNR,
and whether its code grid carries motion, i.e. how often the codes change when the frame
content moves by 1, 2 or 4 pixels.

Code change rate: frames are shifted with np.roll along x; codes are compared at the same grid
position, over the interior cells (the ring of cells at the border sees the wrapped edge and is
left out). "busy" cells hold structure (pixel sd > 0.02 inside the cell); on flat background a
shift changes nothing, whatever the grid.

    OMP_NUM_THREADS=1 python benchmarks/bench_vqvae.py --model shapes --set moving --clips 200
"""

import argparse
import json

import torch

from rocksynth.data.videos import procedural_clips
from rocksynth.pretrained.registry import resolve_model
from rocksynth.models.checkpoints import load_checkpoint, video_models
from rocksynth.training.video import psnr, to_tensor


@torch.no_grad()
def round_trip_psnr(vqvae, frames: torch.Tensor) -> float:
    recon = torch.cat([vqvae.decode(vqvae.encode(chunk)) for chunk in frames.split(64)])
    return psnr(recon, frames)


@torch.no_grad()
def code_change_rates(vqvae, frames: torch.Tensor, shifts=(1, 2, 4)) -> dict:
    """Fraction of interior code positions (all, and busy ones) whose code changes per shift."""
    codes = vqvae.encode(frames)  # (B, h, w, P)
    cell = frames.shape[-1] // codes.shape[2]
    cells = frames.unfold(-2, cell, cell).unfold(-2, cell, cell)  # (B, C, h, w, cell, cell)
    busy = cells.std(dim=(-1, -2)).amax(1) > 0.02  # (B, h, w)
    interior = (slice(None), slice(1, -1), slice(1, -1))
    rates = {}
    for shift in shifts:
        moved = vqvae.encode(torch.roll(frames, shift, dims=-1))
        changed = (moved != codes).any(-1)[interior]
        rates[shift] = {"all": float(changed.float().mean()),
                        "busy": float(changed[busy[interior]].float().mean()) if busy[interior].any() else float("nan")}
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes", help="Shipped video model name or checkpoint path.")
    parser.add_argument("--set", default="moving", help="Procedural set of the held-out clips.")
    parser.add_argument("--clips", type=int, default=200, help="Held-out clips (2 frames each).")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    if args.clips < 1:
        parser.error("--clips must be at least 1")
    payload = load_checkpoint(resolve_model(args.model, "video"), "video")
    vqvae, _ = video_models(payload)
    frame = payload["config"]["frame"]
    clips = procedural_clips(args.set, args.clips, 2, frame["size"], split="heldout", start=5000)
    if clips.shape[-1] != frame["channels"]:
        parser.error(f"--set {args.set} has {clips.shape[-1]} channel(s), the model {frame['channels']}")
    frames = to_tensor(clips.reshape(-1, *clips.shape[2:]))
    codes = vqvae.encode(frames[:1])
    result = {"model": str(args.model), "set": args.set, "frames": len(frames),
              "grid": list(codes.shape[1:3]), "cell_px": frame["size"] // codes.shape[2],
              "round_trip_psnr_db": round_trip_psnr(vqvae, frames),
              "code_change_rate": code_change_rates(vqvae, frames)}
    print(f"{result['model']}: {result['frames']} held-out {args.set} frames of {frame['size']}x{frame['size']}, "
          f"code grid {result['grid'][0]}x{result['grid'][1]} ({result['cell_px']} px cells)")
    print(f"round-trip PSNR {result['round_trip_psnr_db']:.2f} dB")
    print("| shift (px) | codes changed, interior cells | codes changed, busy cells |")
    print("|---|---|---|")
    for shift, rate in result["code_change_rate"].items():
        print(f"| {shift} | {rate['all']:.3f} | {rate['busy']:.3f} |")
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
