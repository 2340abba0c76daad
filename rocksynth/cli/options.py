"""Options shared by several commands, so they read and behave the same everywhere, and `number`,
the numeric option whose range is checked while the command line is parsed (a click usage error,
exit 2, before any work) instead of deep inside a run."""

import math

import typer

SEED_MAX = 2 ** 32 - 1  # numpy's and torch's seeding both take it; the trainers derive seeds from it


def _describe(low, high, low_open: bool, high_open: bool) -> str:
    """Click's notation: x>=1, x>0, 0<=x<1, x<=8."""
    if high is None:
        return f"x{'>' if low_open else '>='}{low}"
    if low is None:
        return f"x{'<' if high_open else '<='}{high}"
    return f"{low}{'<' if low_open else '<='}x{'<' if high_open else '<='}{high}"


class OptionRangeError(typer.BadParameter):
    """A numeric option out of its range: a click usage error (exit 2; `cli.main` prints it as
    one line, like every other refusal)."""


def range_check(low, high, low_open: bool, high_open: bool, message: "str | None"):
    """A check of a value against [low, high] (None: unbounded), raising `OptionRangeError`; the
    callback of `number`, and the range check of settings that once were such options."""
    described = _describe(low, high, low_open, high_open)

    def check(value):
        if value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionRangeError(f"{value} is not a finite number")
        below = low is not None and (value < low or (low_open and value == low))
        above = high is not None and (value > high or (high_open and value == high))
        if below or above:
            raise OptionRangeError(f"{value}: {message}" if message else f"{value} is not in the range {described}")
        return value

    return check


def number(default, *param_decls: str, min=None, max=None, min_open: bool = False, max_open: bool = False,
           message: "str | None" = None, help: str = "", **kwargs):
    """A numeric typer option within [min, max] (`min_open`/`max_open`: the bound itself excluded;
    None: unbounded). Floats must also be finite. The range is appended to the help text."""
    if min is None and max is None:
        return typer.Option(default, *param_decls, callback=range_check(None, None, False, False, message),
                            help=help, **kwargs)
    described = _describe(min, max, min_open, max_open)
    return typer.Option(default, *param_decls, callback=range_check(min, max, min_open, max_open, message),
                        help=f"{help} [{described}]".strip(), **kwargs)


def positive_int(default, *param_decls: str, help: str = "", **kwargs):
    """A whole number >= 1 (counts, sizes, iterations, intervals)."""
    return number(default, *param_decls, min=1, help=help, **kwargs)


def seed_option(help: str = "Random seed: the same seed gives the same output."):
    return number(0, "--seed", min=0, max=SEED_MAX, help=help)


def threads_option():
    return positive_int(1, "--threads", help="Torch CPU threads.")


def learning_rate(default, *param_decls: str, zero_means_default: bool = False, help: str = "", **kwargs):
    """A learning rate in (0, 1); with `zero_means_default`, 0 too (it stands for the default)."""
    if zero_means_default:
        return number(default, *param_decls, min=0, max=1, max_open=True, help=help,
                      message="learning rates must be positive and below 1 (0: the default)", **kwargs)
    return number(default, *param_decls, min=0, max=1, min_open=True, max_open=True, help=help,
                  message="learning rates must be positive and below 1", **kwargs)


Threshold = number(None, "--threshold", help="Gray value separating pore from solid (default: Otsu).")
PoreValue = typer.Option("auto", "--pore-value",
                         help="Which phase is pore: 255/0 for binary input, dark/bright for gray (auto: 255, or dark).")
Crop = typer.Option(False, "--crop", help="Crop a detected circular micro-CT field of view to its inscribed square.")
VoxelSize = typer.Option(None, "--voxel-size", help="Voxel size in metres, or with a unit: 5.345um.")
RawShape = typer.Option(None, "--shape", help="Shape of a .raw input, ZxYxX.")
RawDtype = typer.Option("uint8", "--dtype", help="Data type of a .raw input (uint8, uint16, float32, ...).")
Json = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")
Seed = seed_option()

# The dask engine of the chunked measures (`rocksynth.engine.dask_engine`).
Jobs = positive_int(2, "--jobs", help="Threads (or, with --memory-limit, worker processes) that measure chunks.")
MemoryLimit = typer.Option(None, "--memory-limit", help="Memory per worker process, e.g. 4GB: runs a local dask "
                           "cluster of --jobs processes that spill to disk above it.")
Scheduler = typer.Option(None, "--scheduler", help="Address of a running dask.distributed scheduler "
                         "(tcp://host:8786); default: $DASK_SCHEDULER_ADDRESS.")
Chunks = typer.Option(None, "--chunks", help="Chunk shape ZxYxX of the measures (default 128x128x128).")

# `--device` of the commands that run a network (`rocksynth.devices`).
Device = typer.Option("auto", "--device", metavar="auto|cpu|cuda|cuda:N|mps",
                      help="Where the network runs: auto (a CUDA or MPS GPU if there is one, else the CPU), cpu, "
                           "cuda, cuda:N or mps. CUDA runs in mixed precision, so its output can differ slightly "
                           "from the CPU's.")

# `--device` of the `train` commands: the same values, and the harness's mixed precision.
TrainDevice = typer.Option("auto", "--device", metavar="auto|cpu|cuda|cuda:N|mps",
                           help="Where to train: auto (a CUDA or MPS GPU if there is one, else the CPU), cpu, cuda, "
                                "cuda:N or mps. CUDA trains in mixed precision; on the CPU a seed gives the same run "
                                "as before. Under torchrun each process takes its own GPU (docs/training.md).")


def parse_device(text: str):
    """The `torch.device` of a `--device` value; what `auto` chose is reported when it is not the CPU.

    Raises
    ------
    BadInputError
        One line for an unknown name or a device this machine does not have.
    """
    from rocksynth.devices import resolve_device
    from rocksynth.progress import log

    device = resolve_device(text)
    if text.strip().lower() == "auto" and device.type != "cpu":
        log(f"--device auto: running on {device}")
    return device


# `--config FILE.toml` of every `train` command (`rocksynth.cli.config`).
def config_option(hidden: bool = False):
    """`--config FILE.toml`; `hidden` leaves it out of the option list of a command whose help
    keeps to a few flags (that help then names it in its description)."""
    return typer.Option(None, "--config", metavar="FILE.toml", hidden=hidden,
                        help="Options from a TOML file (keys: the option names, e.g. iters = 2000); the command "
                             "line overrides it. The run's resolved configuration is then written to <out>.toml.")


# `--set KEY=VALUE`: any field of a trainer's settings dataclass, by name.
def Set(help: str):  # noqa: N802 - an option factory, named like the options above
    return typer.Option(None, "--set", metavar="KEY=VALUE", help=help)


_EXPECTED = {int: "a whole number", float: "a finite number", bool: "true or false"}


def _convert(kind: type, text: str):
    """`text` as a value of the field type `kind` (int, float, bool or str); ValueError if it is not one."""
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return text.lower() in ("true", "1", "yes")
    if kind is int:
        return int(text)  # '1.5' and '1e3' are refused, not truncated
    if kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    return text


def apply_settings(settings, pairs: "list[str] | None", flags: "dict[str, str] | None" = None):
    """Set fields of the dataclass instance `settings` from `KEY=VALUE` texts, converted to each
    field's type; `-` in a key reads as `_`. Only int, float, bool and str fields are settable.

    Parameters
    ----------
    settings : dataclass instance
        The trainer's settings, changed in place and returned.
    pairs : list of str or None
        The `--set` values, applied in order.
    flags : dict, optional
        Field name -> the command's own flag for it (such a field is refused: give the flag).

    Raises
    ------
    BadInputError
        One line for an unknown key, a field that has its own flag, or a value of the wrong type.
    """
    import dataclasses

    from rocksynth.errors import BadInputError

    fields = {f.name: f.type for f in dataclasses.fields(settings) if f.type in (int, float, bool, str)}
    for text in pairs or ():
        key, sep, value = text.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise BadInputError(f"--set {text!r}: expected KEY=VALUE, e.g. --set batch=4")
        if flags and key in flags:
            raise BadInputError(f"--set {key}: use {flags[key]}")
        if key not in fields:
            raise BadInputError(f"--set {key}: unknown setting; settable: {', '.join(sorted(set(fields) - set(flags or ())))}")
        try:
            setattr(settings, key, _convert(fields[key], value.strip()))
        except ValueError:
            raise BadInputError(f"--set {key}={value.strip()}: expected {_EXPECTED[fields[key]]}") from None
    return settings


# `--time-budget 2h`: the training harness stops cleanly after it (rocksynth.training.loop).
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: "str | None") -> "float | None":
    """A duration such as ``2h``, ``90m``, ``3600s``, ``1.5h`` or ``3600`` (seconds) in seconds;
    None stays None.

    Raises
    ------
    BadInputError
        If the text is not a positive number with an optional unit s, m, h or d.
    """
    from rocksynth.errors import BadInputError

    if text is None:
        return None
    value = text.strip().lower()
    unit = _DURATION_UNITS.get(value[-1:]) if value else None
    number_text = value[:-1] if unit is not None else value
    try:
        seconds = float(number_text) * (unit or 1.0)
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds > 0):
        raise BadInputError(f"--time-budget {text!r}: expected a positive duration like 2h, 90m or 3600s")
    return seconds


def time_budget_option():
    return typer.Option(None, "--time-budget", metavar="DURATION",
                        help="Stop cleanly after this long (e.g. 2h, 90m, 3600s) with a checkpoint; "
                             "continue later with --resume.")
