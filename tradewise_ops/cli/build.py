"""``tradewise build`` and ``tradewise push``: the API and worker images, through the Docker SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tradewise_ops.cli.state import get_state
from tradewise_ops.cli.terminal import TableData


def register(app: typer.Typer) -> None:
    """Add ``build`` and ``push`` to the root command."""
    app.command("build")(build)
    app.command("push")(push)


def build(
    ctx: typer.Context,
    tag: str = typer.Argument("latest", help="Image tag (the git commit is tagged too)."),
    only: str = typer.Option(None, "--only", help="Build one image: api or worker."),
    push_after: bool = typer.Option(False, "--push", help="Push to the registry after building."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the build cache."),
    base_image: str = typer.Option(
        None,
        "--base-image",
        envvar="TRADEWISE_BASE_IMAGE",
        help="Base image (default python:3.11-slim); any with python3 3.11+ and venv.",
    ),
    wheelhouse: str = typer.Option(
        None,
        "--wheelhouse",
        help="Install offline from the wheels in DIR (filled by `pip wheel` when it has none).",
    ),
) -> None:
    """Build the API and worker images, streaming the build's progress."""
    from tradewise_ops.adapters.images import ImageBuilder, prepare_wheelhouse

    state = get_state(ctx)
    term = state.terminal
    env = state.environment()
    builder = ImageBuilder(env)
    wheels = Path(wheelhouse) if wheelhouse else None
    try:
        if wheels is not None and not any(wheels.glob("*.whl")):
            term.step(f"filling the wheelhouse {wheels}")
            prepare_wheelhouse(wheels, builder.root / "pyproject.toml", on_line=term.info)
        built = builder.build(
            tag,
            only=only,
            no_cache=no_cache,
            base_image=base_image,
            wheelhouse=wheels,
            on_line=term.info,
        )
        for image in built:
            term.success(f"built {', '.join(image.tags)} in {image.seconds:.1f}s")
        digests: dict[str, str] = {}
        if push_after:
            digests = builder.push(tag, only=only, on_line=term.info)
    finally:
        builder.close()
    data: dict[str, Any] = {
        "images": [
            {
                "component": i.component,
                "id": i.image_id,
                "tags": i.tags,
                "size_mb": round(i.size_bytes / 1e6, 1),
                "seconds": round(i.seconds, 1),
            }
            for i in built
        ],
        "digests": digests,
    }
    rows = [
        [
            i.component,
            ", ".join(i.tags),
            i.image_id.removeprefix("sha256:")[:12],
            f"{i.size_bytes / 1e6:.0f} MB",
        ]
        for i in built
    ]
    term.result(data, TableData(["image", "tags", "id", "size"], rows))


def push(
    ctx: typer.Context,
    tag: str = typer.Argument("latest", help="Tag of the built images to push."),
    only: str = typer.Option(None, "--only", help="Push one image: api or worker."),
) -> None:
    """Push built images to the environment's registry and record their digests."""
    from tradewise_ops.adapters.images import ImageBuilder, images_file

    state = get_state(ctx)
    env = state.environment()
    builder = ImageBuilder(env)
    try:
        digests = builder.push(tag, only=only, on_line=state.terminal.info)
    finally:
        builder.close()
    state.terminal.success(f"recorded digests in {images_file()}")
    rows = [[c, f"{builder.remote_name(c)}:{tag}", d] for c, d in digests.items()]
    state.terminal.result(
        {"environment": env.name, "tag": tag, "digests": digests},
        TableData(["image", "pushed", "digest"], rows),
    )
