"""The torch device a command runs on, and mixed precision on CUDA.

`resolve_device` turns a `--device` value into a `torch.device` (the CLI calls it; library
functions take the `torch.device`). Models are moved to the device when they are loaded, inputs
follow the model (`module_device`), and results come back as CPU numpy arrays (`to_numpy`).
Training steps scale their loss with `grad_scaler` where mixed precision is float16.

On the CPU nothing changes: `mixed_precision` is a no-op there, random numbers are still drawn on
the CPU, and `to_numpy` of a float32 CPU tensor is the tensor's own memory, so CPU outputs are
bit-identical to those of a build without devices.
"""

import contextlib
from typing import Callable

import numpy as np
import torch

from rocksynth.errors import BadInputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _cuda_missing() -> str:
    if torch.version.cuda is None:
        return "no CUDA device is available (torch built without CUDA)"
    return "no CUDA device is available (no GPU or driver found)"


def _mps_missing() -> str:
    if not torch.backends.mps.is_built():
        return "no MPS device is available (torch built without MPS; it needs macOS on Apple silicon)"
    return "no MPS device is available (it needs macOS 12.3 or later on Apple silicon)"


def resolve_device(name: str) -> torch.device:
    """The torch device for a `--device` value.

    Parameters
    ----------
    name : str
        'auto' (a CUDA GPU if there is one, else Apple's MPS if available, else the CPU), 'cpu',
        'cuda' (the current CUDA device), 'cuda:N' or 'mps'; case and surrounding spaces are ignored.

    Returns
    -------
    torch.device
        The device, available on this machine.

    Raises
    ------
    BadInputError
        One line naming the value, for an unknown name or a device this machine does not have.
    """
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise BadInputError(f"--device {name}: {_mps_missing()}")
        return torch.device("mps")
    kind, sep, index = text.partition(":")
    if kind == "cuda" and (not sep or index.isdigit()):
        if not torch.cuda.is_available():
            raise BadInputError(f"--device {name}: {_cuda_missing()}")
        if sep and int(index) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise BadInputError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        return torch.device(text)
    raise BadInputError(f"--device {name!r}: expected one of {', '.join(DEVICE_CHOICES)}")


def module_device(module: "torch.nn.Module | Callable") -> torch.device:
    """The device of a module's parameters; the CPU for a module without any, or for a plain
    function standing in for a network (as tests do)."""
    parameters = getattr(module, "parameters", None)
    for parameter in parameters() if parameters is not None else ():
        return parameter.device
    return torch.device("cpu")


def autocast_dtype(device: "torch.device | None") -> "torch.dtype | None":
    """The reduced precision `mixed_precision` runs at on `device`, or None (full float32).

    Only CUDA gets mixed precision. bfloat16 where the GPU has it (Ampere and later): it keeps
    float32's exponent range, so GAN logits, attention scores and losses cannot overflow to inf and
    training needs no loss scaling; float16 (range up to 65504) only on older GPUs that lack it.
    """
    if device is None or torch.device(device).type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def mixed_precision(device: "torch.device | None"):
    """A context in which the forward passes of models on `device` run in mixed precision.

    Parameters
    ----------
    device : torch.device or None
        The models' device; None means the CPU.

    Returns
    -------
    contextlib.AbstractContextManager
        `torch.autocast` at `autocast_dtype(device)` on CUDA; on any other device a context that
        does nothing, so CPU (and MPS) arithmetic is exactly float32 as without it.
    """
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def grad_scaler(device: "torch.device | None") -> torch.amp.GradScaler:
    """The loss scaler a training step on `device` needs with `mixed_precision`.

    Parameters
    ----------
    device : torch.device or None
        Where the training step runs (None: the CPU).

    Returns
    -------
    torch.amp.GradScaler
        Enabled only where `mixed_precision` computes in float16 (CUDA without bfloat16), whose
        small gradients would underflow to zero unscaled; elsewhere disabled, so its `scale`,
        `step` and `update` pass the loss and the optimiser step through unchanged.
    """
    kind = "cuda" if device is not None and torch.device(device).type == "cuda" else "cpu"
    return torch.amp.GradScaler(kind, enabled=autocast_dtype(device) == torch.float16)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor on any device as a CPU numpy array; reduced-precision floats (from
    `mixed_precision`) as float32, since numpy has no bfloat16. A float32 CPU tensor is not copied."""
    tensor = tensor.detach()
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    return tensor.cpu().numpy()
