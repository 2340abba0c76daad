"""The `rocksynth` Typer app: global options and the registry of commands.

Each command lives in its own module under `rocksynth.cli` and is registered here.
"""

import typer

from rocksynth import __version__
from rocksynth.progress import set_quiet

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
) -> None:
    set_quiet(quiet)


def _register() -> None:
    # Imported here so that `rocksynth --help` stays fast: heavy imports live inside commands.
    from rocksynth.cli import convert, info, models

    app.command("info")(info.info)
    app.command("convert")(convert.convert)
    app.command("models")(models.models)
    from rocksynth.cli import reconstruct as reconstruct_cli
    app.command("reconstruct")(reconstruct_cli.reconstruct)
    train_app.command("reconstruct")(reconstruct_cli.train_reconstruct)
    from rocksynth.cli import synthesize as synthesize_cli; app.command("synthesize")(synthesize_cli.synthesize); train_app.command("texture")(synthesize_cli.train_texture)  # noqa: E702

    from rocksynth.cli import analyze as analyze_cli; app.command("analyze")(analyze_cli.analyze)  # noqa: E702
    from rocksynth.cli import compare as compare_cli; app.command("compare")(compare_cli.compare)  # noqa: E702
    from rocksynth.cli import predict as predict_cli; app.command("predict")(predict_cli.predict); train_app.command("video")(predict_cli.train_video)  # noqa: E702
    from rocksynth.cli import clean as clean_cli; app.command("clean")(clean_cli.clean); train_app.command("clean")(clean_cli.train_clean)  # noqa: E702


_register()
