"""`--config FILE.toml` of the `train` commands: a file of option values under the command line.

A `train` command decorated with `configurable` takes its options from three places, in order of
precedence: the command line (flags and `--set`), the file given with `--config`, the defaults.
The file's keys are the command's own option names (`iters = 2000`, `warmup_iters = 500`; a `-`
reads as `_`) and, for a command with `--set`, the keys of `--set` (`crop = 48`).

After every successful run (with or without `--config`), the resolved configuration, every
option's final value, is written to `<out>.toml` beside the checkpoint (by the first process of a
torchrun), so that `rocksynth train KIND DATA --config <out>.toml --out OTHER.pt` repeats the run.
The same configuration, with the command's name, is kept in ``meta['train_config']`` of every
checkpoint the run writes (`rocksynth.training.loop.recording_config`). The shipped models' files
are `rocksynth/pretrained/<name>.toml` (`rocksynth models NAME --config`).
"""

import copy
import dataclasses
import functools
import inspect
import json
import math
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer

# Options that say where and how long to run, not what to train: read from a file, never written to one.
_NOT_WRITTEN = ("config", "out", "resume", "time_budget")
_EXPECTED = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def _key(option) -> str:
    """The file key of a typer option: its long flag without the dashes, `-` as `_`."""
    long = [decl for decl in option.param_decls if decl.startswith("--")]
    return long[0][2:].replace("-", "_")


def _base(annotation) -> "tuple[type, bool]":
    """The value type of an option's annotation (Optional unwrapped) and whether it is a list."""
    if typing.get_origin(annotation) is typing.Union:
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if typing.get_origin(annotation) in (list, typing.List):
        return typing.get_args(annotation)[0], True
    return annotation, False


def _typed(value: Any, kind: type) -> Any:
    """`value` read from TOML as the option type `kind`; ValueError if it is not one (no rounding)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif isinstance(value, str):
        return Path(value) if kind is Path else value
    raise ValueError(value)


def read_config(path: Path) -> "dict[str, Any]":
    """The table of a TOML configuration file, keys with `-` read as `_`.

    Raises
    ------
    BadInputError
        One line if the file is missing or not TOML.
    """
    import tomllib

    from rocksynth.errors import BadInputError

    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise BadInputError(f"--config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"--config {path}: not a TOML file ({exc})") from None
    return {key.replace("-", "_"): value for key, value in table.items()}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


def _present(values: "dict[str, Any]") -> "dict[str, Any]":
    """`values` as `write_config` writes them: None (the default) left out, tuples as lists."""
    return {key: (list(value) if isinstance(value, tuple) else value) for key, value in values.items()
            if value is not None}


def write_config(path: Path, values: "dict[str, Any]", command: str) -> None:
    """Write `values` (None left out: the default) to the TOML file `path`, atomically."""
    lines = [f"# rocksynth {command}: the resolved configuration of the run (--config this file repeats it)"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]
    from rocksynth.io.paths import atomic_output

    with atomic_output(path, suffix=".toml") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def configurable(settings: "Optional[Callable[[], type]]" = None, set_param: str = "settings_text",
                 flags: "Optional[dict[str, str]]" = None):
    """Decorate a `train` command so that it reads `--config FILE.toml` and then writes `<out>.toml`.

    Parameters
    ----------
    settings : callable, optional
        For a command with `--set`: returns the settings dataclass whose int, float, bool and str
        fields `--set` sets (imported only when needed). File keys that are not options are such
        fields; they go before the command line's `--set` values, which override them.
    set_param : str
        The name of the command's `--set` parameter.
    flags : dict, optional
        Settings fields with a flag of their own (field -> flag), as `options.apply_settings` takes.

    Returns
    -------
    callable
        The decorator. The command must have a `config` parameter (`options.config_option()`) and an `out`
        option; its signature is kept for typer.
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command)
        options = {name: param.default for name, param in signature.parameters.items()
                   if type(param.default).__name__ == "OptionInfo" and name not in ("config", set_param)}
        keys = {_key(option): name for name, option in options.items()}
        # Required options other than --out (e.g. train video --stage) may come from the file: typer
        # sees them as optional, and `run` refuses a run that got them from neither place.
        required = [name for name, option in options.items() if option.default is ... and name != "out"]
        for name in required:
            options[name] = copy.copy(options[name])
            options[name].default = None

        @functools.wraps(command)
        def run(ctx: typer.Context, **values: Any) -> None:
            from rocksynth.errors import BadInputError

            from rocksynth.training.outputs import checkpoint_path

            sidecar = checkpoint_path(values["out"]).with_suffix(".toml")  # the resolved configuration's file
            pairs = list(values.get(set_param) or [])
            if values.get("config") is not None:
                # Resuming from the configuration a run wrote is fine (it is rewritten the same); a
                # new run would replace the user's recipe with its resolved values.
                if not values.get("resume") and Path(values["config"]).resolve() == sidecar.resolve():
                    raise BadInputError(f"--config {values['config']}: this run writes its own configuration there "
                                        "(beside --out); copy the recipe to another name or choose another --out")
                file_pairs = _merge(ctx, values, read_config(values["config"]), Path(values["config"]))
                if set_param in values:
                    values[set_param] = file_pairs + pairs
            for name in required:
                if values[name] is None:
                    flag = next(decl for decl in options[name].param_decls if decl.startswith("--"))
                    raise BadInputError(f"missing option '{flag}' (give it on the command line or in --config)")
            from rocksynth.training.loop import process_rank, recording_config

            # Known before the run (a bad --set is refused here), so every checkpoint can hold it.
            name, resolved = f"train {ctx.info_name}", _resolved(values)
            with recording_config({"command": name, "options": _present(resolved)}):
                command(**values)
            if process_rank()[0] != 0:  # under torchrun, the first process writes
                return
            write_config(sidecar, resolved, name)

        def _resolved(values: dict) -> "dict[str, Any]":
            """Every written option's final value (paths as text) under its file key (`--downsample`:
            'downsample', not the parameter's name), then the settings fields'."""
            resolved = {_key(option): values[name] for name, option in options.items() if name not in _NOT_WRITTEN}
            if settings is not None:
                resolved.update(_settings_values(values, set_param))
            return {key: (str(value) if isinstance(value, Path) else value) for key, value in resolved.items()}

        def _merge(ctx: typer.Context, values: dict, table: dict, path: Path) -> "list[str]":
            """Fill `values` from `table` where the command line left the default; the file's
            settings keys as `--set` texts."""
            from rocksynth.errors import BadInputError

            fields = _settings_fields() if settings is not None else {}
            pairs = []
            for key, value in table.items():
                name = keys.get(key)
                if name is None or name in _NOT_WRITTEN[:2]:
                    if key in fields:
                        try:
                            _typed(value, fields[key])
                        except ValueError:
                            raise BadInputError(f"--config {path}: {key} = {value!r}: expected "
                                                f"{_EXPECTED[fields[key]]}") from None
                        pairs.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
                        continue
                    known = sorted(set(keys) - set(_NOT_WRITTEN[:2]) | set(fields))
                    raise BadInputError(f"--config {path}: unknown key {key!r}; known: {', '.join(known)}")
                source = ctx.get_parameter_source(name)
                if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
                    continue  # the command line wins
                kind, is_list = _base(signature.parameters[name].annotation)
                try:
                    typed = [_typed(item, kind) for item in value] if is_list else _typed(value, kind)
                    if options[name].callback is not None:
                        typed = options[name].callback(typed)
                except (ValueError, TypeError):
                    expected = f"a list of {_EXPECTED.get(kind, 'values')}s" if is_list else _EXPECTED.get(kind, "a string")
                    raise BadInputError(f"--config {path}: {key} = {value!r}: expected {expected}") from None
                except typer.BadParameter as exc:
                    raise BadInputError(f"--config {path}: {key}: {exc.message}") from None
                values[name] = typed
            return pairs

        def _settings_fields() -> "dict[str, type]":
            return {field.name: field.type for field in dataclasses.fields(settings())
                    if field.type in (int, float, bool, str) and field.name not in (flags or {})}

        def _settings_values(values: dict, set_param: str) -> "dict[str, Any]":
            """Every settable field's final value: the defaults with the `--set` texts applied."""
            from rocksynth.cli.options import apply_settings

            flagged = {field: values[field] for field in (flags or {})}
            final = apply_settings(settings()(**flagged), values.get(set_param), flags)
            return {name: getattr(final, name) for name in _settings_fields()}

        # typer reads the command's options from this signature, and passes the context as `ctx`.
        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        parameters = [param.replace(default=options[name]) if name in required else param
                      for name, param in signature.parameters.items()]
        run.__signature__ = signature.replace(parameters=[context, *parameters])
        run.__annotations__ = {"ctx": typer.Context, **command.__annotations__}
        return run

    return decorate
