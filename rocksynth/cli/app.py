"""The `rocksynth` Typer app: global options and the registry of commands.

Each command lives in its own module under `rocksynth.cli` and is registered here.
"""

from typing import Optional

import typer

from rocksynth import __version__
from rocksynth.progress import route_library_logs, set_quiet

app = typer.Typer(
    name="rocksynth",
    help="Digital rocks and image sequences: reconstruct, synthesize, analyze, predict, clean.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
train_app = typer.Typer(help="Train a model on your own data.", no_args_is_help=True)
app.add_typer(train_app, name="train")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rocksynth {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    max_voxels: Optional[float] = typer.Option(
        None, "--max-voxels", min=1, metavar="N",
        help="Largest decoded size (8-bit voxels; 8e9 = 2000^3) one input file may have; replaces the default "
             "limits (half the memory, 256 MiB per 2D image, no file compressed over 1000:1). "
             "Same as ROCKSYNTH_MAX_VOXELS; see docs/formats.md."),
) -> None:
    route_library_logs()
    set_quiet(quiet)
    if max_voxels is not None:
        from rocksynth.io.limits import set_max_voxels

        if max_voxels != int(max_voxels):
            raise typer.BadParameter("must be a whole number of voxels", param_hint="--max-voxels")
        set_max_voxels(int(max_voxels))


def _register() -> None:
    # Command modules import their heavy dependencies (torch, PoreSpy) inside the commands,
    # so `rocksynth --help` stays fast. Listed in the order `--help` shows them.
    from rocksynth.cli import analyze, clean, compare, convert, info, models, predict, reconstruct, synthesize

    for module in (reconstruct, synthesize, analyze, compare, predict, clean, info, convert, models):
        name = module.__name__.rsplit(".", 1)[-1]
        app.command(name)(getattr(module, name))
    for name, command in (("reconstruct", reconstruct.train_reconstruct), ("texture", synthesize.train_texture),
                          ("video", predict.train_video), ("clean", clean.train_clean)):
        train_app.command(name)(command)


_register()
