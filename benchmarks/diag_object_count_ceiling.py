"""How well can any prediction that starts from the frames it saw count the objects of `scenes`?

The object gate of `bench_predict.py` counts, in each predicted frame, the regions that differ
from the clip's true background by more than 0.1, and compares that count with the true frame's.
A prediction's background can only come from the context frames, moved with the camera. This
script scores, on the benchmark's held-out clips (seeds from 1000), predictions that know the
truth better than any model can:

- **true objects, background moved**: each true frame's objects exactly (every pixel where it
  differs from its background), on the last context frame's background moved by the camera's
  true drift (bilinear, as the generator itself moves it);
- **last frame moved along the true motion**: the last context frame sampled along the clip's
  true flows, composed from step to step (every object moved and turned exactly, the camera
  moved). Where content comes into view (the background an object leaves, what enters the
  frame) this samples what was there before, such as the object itself: what a network that
  only moves pixels draws;
- **... and the truth where content comes into view**: the same, with the true frame where the
  content was not seen in the last context frame (a perfect fill of what moving cannot give).

Printed: the fraction of clips whose count equals the truth's, per predicted step, beside
repeating the last frame, and each row's PSNR; then, object by object, the fraction of clips with
no true object lost and no region invented (`bench_predict.lost_and_invented`).

    OMP_NUM_THREADS=1 python benchmarks/diag_object_count_ceiling.py --clips 200
"""

import argparse

import numpy as np
import torch

from bench_predict import HELDOUT_START, lost_and_invented, object_counts, step_table
from bench_predict_footage import pooled_psnr
from rocksynth.data.videos import scenes_with_truth
from rocksynth.models.frame_predictor import sample_along
from rocksynth.training.video import to_tensor


def composed_flows(flow: torch.Tensor, visible: torch.Tensor, first: int, n_steps: int):
    """Where the content of frames first+1 .. first+n_steps was in frame `first`: (n, n_steps, 2,
    H, W) displacements, each step's flow back to the frame before followed through the earlier
    ones; and whether it was seen there all the way, (n, n_steps, 1, H, W)."""
    steps, seen, back, kept = [], [], None, None
    for t in range(first + 1, first + n_steps + 1):
        here, now = flow[:, t, :2], visible[:, t, :1]
        if back is None:
            back, kept = here, now
        else:
            back, kept = here + sample_along(back, here), now * (sample_along(kept, here) > 0.5)
        steps.append(back)
        seen.append(kept)
    return torch.stack(steps, 1), torch.stack(seen, 1).bool()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--predict", type=int, default=10)
    args = parser.parse_args()
    n, c, p, size = args.clips, args.context, args.predict, 64
    frames = c + p
    clips, backgrounds, motion = scenes_with_truth(n, frames, size, "heldout", HELDOUT_START, background=True, motion=True)
    x, back = to_tensor(clips), to_tensor(backgrounds)
    truth, scene = x[:, c:].numpy(), back[:, c:].numpy()
    last = x[:, c - 1]
    camera = torch.from_numpy(motion.camera).float()[:, :, None, None]
    moved_background = torch.stack([sample_along(back[:, c - 1], k * camera.expand(-1, 2, size, size))
                                    for k in range(1, p + 1)], 1)
    on_objects = (x[:, c:] != back[:, c:]).any(2, keepdim=True)
    flows, seen = composed_flows(torch.from_numpy(motion.flow).float(), torch.from_numpy(motion.visible).float(), c - 1, p)
    moved = torch.stack([sample_along(last, d) for d in flows.unbind(1)], 1)
    rows = {
        "repeat last": np.repeat(last[:, None].numpy(), p, 1),
        "last frame moved along the true motion": moved.numpy(),
        "... and the truth where content comes into view": torch.where(seen, moved, x[:, c:]).numpy(),
        "true objects, background moved by the true drift": torch.where(on_objects, x[:, c:], moved_background).numpy(),
    }
    counts = object_counts(truth, scene)
    matched = {}
    print(f"{n} held-out scenes clips, context {c}: fraction of clips whose object count equals the truth's")
    print("| prediction | PSNR (dB) | " + " | ".join(f"step {k}" for k in range(1, p + 1)) + " |")
    print("|---|---|" + "---|" * p)
    for name, pred in rows.items():
        same = (object_counts(pred, scene) == counts).mean(0)
        print(f"| {name} | {pooled_psnr(pred, truth):.2f} | " + " | ".join(f"{v:.2f}" for v in same) + " |")
        lost, invented = lost_and_invented(pred, truth, scene)
        matched[name] = ((lost == 0) & (invented == 0)).mean(0)
    step_table("\nObject by object (bench_predict.lost_and_invented): fraction of clips with no true object lost and "
               "no region invented", matched, p, 2)


if __name__ == "__main__":
    main()
