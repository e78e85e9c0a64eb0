"""``rsvg ground``: the box of a query on your own image, as JSON, and a picture with the attention map.

Everything the command is given is checked before the model is loaded: the options, every output path
(:mod:`rsvg.output_paths`), the batch file's rows (each problem named by its line) and that every image exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from rsvg.commands.ground_batch import Pair, image_problem, read_pairs
from rsvg.data.image_io import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

if TYPE_CHECKING:
    from rsvg.data.image_io import ImageLimits
    from rsvg.geo.scene import SceneOptions
    from rsvg.inference import Grounder

LIMITS_HINT = "raise them with --max-image-pixels / --max-image-side, or read the image in tiles with --scene"


def _pictures(out: Path, pairs: list[Pair], scene_picture: Path | None) -> list[Path]:
    """The picture written for each pair: ``OUT/NNNN_STEM.png`` (or ``--overview`` for a single scene)."""
    return [scene_picture or out / f"{k:04d}_{Path(p.image).stem}.png" for k, p in enumerate(pairs)]


def _check_outputs(
    out: Path, pairs: list[Pair], checkpoint: Path, named: dict[str, Path | None], pictures: list[Path]
) -> None:
    """Refuse every output path that cannot be written, before any work: ``--out`` a file or inside the
    checkpoint, a picture that is a folder or would replace an input image, ``--overview`` / ``--geojson`` /
    ``--geojson-4326`` that are folders, inputs or the same file twice."""
    from rsvg.errors import OutputPathError
    from rsvg.output_paths import check_output_file, check_output_folder, resolved

    check_output_folder(out, "--out", inputs={"--checkpoint": checkpoint})
    seen: dict[Path, str] = {}
    for option, path in named.items():
        if path is None:
            continue
        real = check_output_file(path, option, inputs={"IMAGE": pairs[0].image, "--checkpoint": checkpoint})
        if real in seen:
            raise OutputPathError(f"{option} {path} is also {seen[real]}: give each output its own file")
        seen[real] = option
    images = {resolved(p.image): p for p in pairs}
    option = "--overview" if named.get("--overview") is not None else "--out"
    for picture in dict.fromkeys(pictures):
        real = check_output_file(picture, option)
        if real in images:
            pair = images[real]
            raise OutputPathError(pair.label(f"{option}: the picture {picture} would replace the input image"))
        if seen.get(real, option) != option:
            raise OutputPathError(f"{option}: the picture {picture} is also {seen[real]}")


def ground(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint folder written by rsvg train (e.g. runs/x/best).")],
    image: Annotated[
        Path | None, typer.Argument(help="Image file (JPEG, PNG, TIFF, ...) or a scene (GeoTIFF, any size).")
    ] = None,
    query: Annotated[str | None, typer.Argument(help='The referring expression, e.g. "the red vehicle".')] = None,
    batch: Annotated[
        Path | None, typer.Option(help="CSV (image,query) or JSONL file of pairs instead of IMAGE QUERY.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the PNG pictures (box + attention).")] = Path("grounding_out"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
    heatmap: Annotated[
        str,
        typer.Option(
            help="mlcm: the MLCM attention map (paper Fig. 6; the head's map where the model has none); "
            "head: where the box head looks (cell scores or [REG] attention)."
        ),
    ] = "mlcm",
    strict: Annotated[
        bool, typer.Option(help="Refuse a query whose tokens are mostly unknown to the text encoder (else a warning).")
    ] = False,
    precision: Annotated[
        str, typer.Option(help="fp32, bf16, or auto: bf16 where the CPU or GPU has native bf16 units.")
    ] = "fp32",
    max_image_pixels: Annotated[
        int,
        typer.Option(
            min=1,
            help="Largest image read whole, in pixels (width × height), checked from its header before decoding; "
            "the same limit as rsvg serve's. Scenes are read in tiles and have none.",
        ),
    ] = MAX_IMAGE_PIXELS,
    max_image_side: Annotated[
        int, typer.Option(min=1, help="Largest side of an image read whole, in pixels.")
    ] = MAX_IMAGE_SIDE,
    scene: Annotated[
        bool,
        typer.Option(
            "--scene",
            help="Read the image as a scene (tiled, any size) even when nothing else asks for it. GeoTIFFs are "
            "scenes when georeferenced, not 8-bit, not 1/3/4 bands or over 8192 px a side; the options below "
            "imply it.",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = False,
    bands: Annotated[
        str | None,
        typer.Option(
            help="Bands to read as red,green,blue (or one band as grey), numbered from 1 as in GDAL, e.g. 3,2,1 "
            "(default: the bands marked red, green, blue, else 1,2,3).",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = None,
    tile_gsd: Annotated[
        float | None,
        typer.Option(
            help="Metres per pixel the tiles are read at (the resolution the model was trained on); needs a "
            "projected CRS in metres.",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = None,
    scale: Annotated[
        float | None,
        typer.Option(
            help="Scene pixels per model pixel (2: tiles cover twice the model's input side at half resolution). "
            "Default 1.",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = None,
    overlap: Annotated[
        float,
        typer.Option(help="Overlap of neighbouring tiles, a fraction of the side.", rich_help_panel="Scenes (GeoTIFF)"),
    ] = 0.25,
    top_k: Annotated[
        int, typer.Option(help="Answers to return, best first, after merging.", rich_help_panel="Scenes (GeoTIFF)")
    ] = 5,
    merge_iou: Annotated[
        float,
        typer.Option(
            help="Answers of overlapping tiles whose boxes overlap by more than this IoU are one: the best is kept.",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = 0.5,
    percentiles: Annotated[
        str | None,
        typer.Option(
            help="LOW,HIGH percentiles each band is stretched between to 0..255 (default 2,98; computed on a "
            "decimated overview, nodata left out).",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = None,
    stretch: Annotated[
        str,
        typer.Option(
            help="auto: 8-bit data as it is, other data stretched; always: stretch 8-bit data too.",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = "auto",
    nodata: Annotated[
        float | None,
        typer.Option(help="Nodata value of every band (default: the file's).", rich_help_panel="Scenes (GeoTIFF)"),
    ] = None,
    tile_batch: Annotated[
        int | None,
        typer.Option(
            help="Tiles grounded at once (default: 1 on a CPU, 8 on a GPU).", rich_help_panel="Scenes (GeoTIFF)"
        ),
    ] = None,
    geojson: Annotated[
        Path | None,
        typer.Option(
            help="Write the answers as GeoJSON polygons in the file's CRS.", rich_help_panel="Scenes (GeoTIFF)"
        ),
    ] = None,
    geojson_4326: Annotated[
        Path | None,
        typer.Option(
            "--geojson-4326",
            help="Write the answers as GeoJSON polygons in EPSG:4326 (longitude, latitude).",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = None,
    overview: Annotated[
        Path | None,
        typer.Option(
            help="Write the scene's overview with the answers drawn here (default: a PNG in --out).",
            rich_help_panel="Scenes (GeoTIFF)",
        ),
    ] = None,
) -> None:
    """Print the box in original pixels (clipped to the image) as JSON and write a PNG with the box and the
    attention heatmap.

    A scene (a GeoTIFF of any size, 16-bit or float, any number of bands) is read in overlapping tiles at the
    model's input size; the answers are ranked by the model's score, merged across tiles, and given in scene
    pixels and map coordinates, optionally as GeoJSON, with a picture of the overview."""
    from rsvg.data.image_io import ImageLimits, ImageReadError
    from rsvg.engine.devices import parse_device
    from rsvg.engine.precision import PRECISIONS
    from rsvg.errors import SceneError
    from rsvg.inference import Grounder

    err = Console(stderr=True)
    if heatmap not in ("mlcm", "head"):
        raise typer.BadParameter("choose mlcm or head", param_hint="--heatmap")
    if precision not in PRECISIONS:
        raise typer.BadParameter(f"choose {', '.join(PRECISIONS)}", param_hint="--precision")
    if batch is not None and (image is not None or query is not None):
        raise typer.BadParameter("give IMAGE and QUERY, or --batch FILE, not both")
    if batch is None and (image is None or query is None):
        raise typer.BadParameter("give IMAGE and QUERY, or --batch FILE")
    parse_device(device, "--device")
    scene_outputs = {"--geojson": geojson, "--geojson-4326": geojson_4326, "--overview": overview}
    settings = _scene_settings(
        bands, percentiles, scale, tile_gsd, overlap, merge_iou, top_k, stretch, nodata, tile_batch
    )
    implied = scene or any(v is not None for v in (bands, percentiles, scale, tile_gsd, nodata))
    implied = implied or any(v is not None for v in scene_outputs.values())
    if batch is not None and any(v is not None for v in scene_outputs.values()):
        named = ", ".join(k for k, v in scene_outputs.items() if v is not None)
        raise SceneError(f"{named} names one file: give IMAGE QUERY instead of --batch")
    pairs = read_pairs(batch) if batch is not None else [Pair(str(image), str(query))]
    missing = image_problem(pairs[0].image) if batch is None else None
    if missing is not None:
        raise ImageReadError(missing)
    pictures = _pictures(out, pairs, overview)
    _check_outputs(out, pairs, checkpoint, scene_outputs, pictures)
    if geojson is not None or geojson_4326 is not None:
        _check_map_outputs(pairs[0].image, geojson_4326 is not None)
    limits = ImageLimits(max_image_pixels, max_image_side, LIMITS_HINT)
    grounder = Grounder.from_checkpoint(checkpoint, device=device, precision=precision, device_option="--device")
    grounder.image_limits = limits
    err.print(grounder.precision.describe(), markup=False)
    failures = 0
    for pair, picture in zip(pairs, pictures, strict=True):
        note = grounder.query_warning(pair.query)
        if note is not None:
            if strict:
                err.print(f"error: {pair.label(note)} (--strict)", style="red", markup=False)
                failures += 1
                continue
            err.print(f"warning: {pair.label(note)}", style="yellow", markup=False)
        if implied or _is_scene(pair.image):
            ok = _ground_scene(grounder, pair, settings, picture, geojson, geojson_4326, err)
        else:
            ok = _ground_picture(grounder, pair, heatmap, limits, picture, err)
        failures += not ok
    if failures:
        raise typer.Exit(1 if failures < len(pairs) else 2)


def _ground_picture(
    grounder: Grounder, pair: Pair, heatmap: str, limits: ImageLimits, picture: Path, err: Console
) -> bool:
    """Ground one query on an image read whole, write its picture, print its JSON line; False (after printing
    the error, prefixed by the batch line) when the image or the query cannot be used."""
    from rsvg.data.image_io import ImageReadError, check_image_side, read_picture
    from rsvg.data.tokenizer import QueryTooLongError
    from rsvg.viz import answer_boxes, overlay, save_png

    try:
        rgb, notes = read_picture(pair.image, limits)
        check_image_side(rgb.shape[1], rgb.shape[0], pair.image)
        result = grounder.predict(rgb, pair.query, return_attention=True)
    except ImageReadError as exc:  # its message names the file
        err.print(f"error: {pair.label(str(exc))}", style="red", markup=False)
        return False
    except (QueryTooLongError, ValueError) as exc:
        err.print(f"error: {pair.label(f'{pair.image}: {exc}')}", style="red", markup=False)
        return False
    for note in notes:
        err.print(f"warning: {pair.label(note)}", style="yellow", markup=False)
    heat = result.mlcm_attention if heatmap == "mlcm" and result.mlcm_attention is not None else result.attention
    save_png(picture, overlay(rgb, answer_boxes(result), heat))
    typer.echo(json.dumps({"image": pair.image, "query": pair.query, **result.to_dict(), "picture": str(picture)}))
    return True


def _scene_settings(
    bands: str | None,
    percentiles: str | None,
    scale: float | None,
    tile_gsd: float | None,
    overlap: float,
    merge_iou: float,
    top_k: int,
    stretch: str,
    nodata: float | None,
    tile_batch: int | None,
) -> SceneOptions:
    """The scene options from the command line, checked (a :class:`~rsvg.geo.raster.SceneError` names the
    option)."""
    from rsvg.geo.raster import DEFAULT_PERCENTILES, STRETCH_MODES, SceneError, parse_bands, parse_percentiles
    from rsvg.geo.scene import SceneOptions
    from rsvg.geo.tiling import MAX_OVERLAP

    if not 0 <= overlap <= MAX_OVERLAP:
        raise SceneError(f"--overlap {overlap}: give a fraction of the tile side from 0 to {MAX_OVERLAP}")
    if stretch not in STRETCH_MODES:
        raise SceneError(f"--stretch {stretch!r}: choose one of {', '.join(STRETCH_MODES)}")
    options = SceneOptions(
        bands=None if bands is None else parse_bands(bands),
        scale=scale,
        tile_gsd=tile_gsd,
        overlap=overlap,
        merge_iou=merge_iou,
        top_k=top_k,
        percentiles=DEFAULT_PERCENTILES if percentiles is None else parse_percentiles(percentiles),
        stretch=stretch,
        nodata=nodata,
        batch=tile_batch,
    )
    options.check()
    return options


def _check_map_outputs(path: str, wgs84: bool) -> None:
    """Refuse --geojson / --geojson-4326 before any grounding when the file has no map coordinates (or, for
    EPSG:4326, a CRS that cannot be transformed)."""
    from rsvg.geo.georef import GeoreferenceError
    from rsvg.geo.raster import scene_georeference

    geo, reason = scene_georeference(path)
    if geo is None:
        raise GeoreferenceError(
            f"{path}: no map coordinates ({reason}), so --geojson cannot be written; without it the boxes are "
            "given in scene pixels"
        )
    if wgs84:
        x, y = geo.to_map(0.5, 0.5)
        geo.to_wgs84({"type": "Point", "coordinates": [x, y]}, path)


def _is_scene(path: str) -> bool:
    """A raster file that must be read as a scene (:func:`~rsvg.geo.raster.needs_scene_reading`)."""
    from rsvg.geo.raster import looks_like_raster, needs_scene_reading

    return looks_like_raster(path) and needs_scene_reading(path)


def _ground_scene(
    grounder: Grounder,
    pair: Pair,
    options: SceneOptions,
    picture: Path,
    geojson: Path | None,
    geojson_4326: Path | None,
    err: Console,
) -> bool:
    """Ground one query on a scene, write its outputs, print its JSON line; False (after printing the error,
    prefixed by the batch line) when the file, an option or the query cannot be used."""
    from rsvg.commands.failures import describe_os_error
    from rsvg.data.image_io import ImageReadError
    from rsvg.data.tokenizer import QueryTooLongError
    from rsvg.geo.geojson import feature_collection, write_geojson
    from rsvg.geo.georef import GeoreferenceError
    from rsvg.geo.overview import overview_picture
    from rsvg.geo.raster import SceneError
    from rsvg.geo.scene import SceneGrounder
    from rsvg.viz import save_png

    path = pair.image
    try:
        result = SceneGrounder(grounder).ground(path, pair.query, options, _progress(err))
        outputs: dict[str, str] = {}
        if geojson is not None:
            write_geojson(geojson, feature_collection(result))
            outputs["geojson"] = str(geojson)
        if geojson_4326 is not None:
            write_geojson(geojson_4326, feature_collection(result, wgs84=True))
            outputs["geojson_4326"] = str(geojson_4326)
        save_png(picture, overview_picture(result))
    except (SceneError, GeoreferenceError) as exc:  # their messages name the file or the option
        err.print(f"error: {pair.label(str(exc))}", style="red", markup=False)
        return False
    except (QueryTooLongError, ImageReadError, ValueError) as exc:
        err.print(f"error: {pair.label(f'{path}: {exc}')}", style="red", markup=False)
        return False
    except OSError as exc:
        err.print(f"error: {pair.label(describe_os_error(exc))}", style="red", markup=False)
        return False
    err.print(
        f"{path}: {result.tiles} tiles of {result.tile_side} px read at {result.image_size} px (scale "
        f"{result.scale:g}, overlap {result.overlap:.0%}), {result.tiles_skipped} all nodata, "
        f"{result.seconds['total']:.1f} s; {result.stretch.describe()}",
        markup=False,
        highlight=False,
    )
    if result.note:
        err.print(f"note: {result.note}", style="yellow", markup=False)
    line = {"image": path, "query": pair.query, "scene": True, **result.to_dict(), **outputs, "picture": str(picture)}
    typer.echo(json.dumps(line))
    return True


def _progress(err: Console) -> Callable[[int, int], None] | None:
    """A progress callback that redraws one line on a terminal and says nothing elsewhere."""
    if not err.is_terminal:
        return None

    def show(done: int, total: int) -> None:
        err.print(f"\rtiles {done}/{total}", end="", markup=False, highlight=False)
        if done == total:
            err.print("\r", end="")

    return show
