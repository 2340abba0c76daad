"""Physical units: lengths given as metres or as strings like `5.345um`, permeability conversions."""

import re

from rocksynth.errors import BadInputError

_LENGTH_FACTORS = {
    "": 1.0, "m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "microns": 1e-6,
    "nm": 1e-9, "cm": 1e-2,
}
_LENGTH_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Zµ]*)\s*$")

# 1 darcy = 9.869233e-13 m² (defined via 1 cP fluid, 1 atm/cm gradient, 1 cm/s flux).
DARCY_M2 = 9.869233e-13


def parse_length(text: "str | float | None") -> "float | None":
    """Length in metres from `5.345um`, `0.005mm`, `5.345e-6` (bare numbers are metres)."""
    if text is None or isinstance(text, float):
        return text
    if str(text).strip().startswith("-"):
        raise BadInputError(f"length must be positive, got {text!r}")
    match = _LENGTH_RE.match(str(text))
    if not match or match.group(2).lower() not in _LENGTH_FACTORS:
        raise BadInputError(f"cannot read length {text!r}: use metres (5.345e-6) or a unit (5.345um, 0.005mm)")
    value = float(match.group(1)) * _LENGTH_FACTORS[match.group(2).lower()]
    if value <= 0:
        raise BadInputError(f"length must be positive, got {text!r}")
    if value > 1.0:
        raise BadInputError(f"length {text!r} is over 1 m per voxel; did you forget the unit (e.g. 5.345um)?")
    return value


def format_length(metres: "float | None") -> str:
    """Human-readable length, e.g. 5.345e-06 -> '5.345 µm'."""
    if metres is None:
        return "unknown"
    for unit, factor in (("m", 1.0), ("mm", 1e-3), ("µm", 1e-6), ("nm", 1e-9)):
        if metres >= factor:
            return f"{metres / factor:.4g} {unit}"
    return f"{metres:.4g} m"


def m2_to_millidarcy(k_m2: float) -> float:
    return k_m2 / DARCY_M2 * 1e3
