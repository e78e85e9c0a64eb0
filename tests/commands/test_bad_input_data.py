"""Bad input to the data commands (synth, build, check-data, review-export), one table per kind: every case ends in
a clear message that names the file or option (exit 2 when refused, check-data exit 1 for a broken dataset), never a
traceback, a lost input or a silent success. Where data could be lost, every file under the test's folder (inputs,
review database) is hashed before and after and must be byte-for-byte the same. A new case is one line in a table.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import rsvg.data.partials as partials
from helpers.datasets import make_official_dataset
from rsvg.cli import app
from rsvg.construct.build import build_dataset
from rsvg.data.check import check_dataset
from rsvg.data.dataset import verify_images
from rsvg.data.dior_rsvg import GroundingDatasetWriter, load_split
from rsvg.errors import DatasetError, OutputPathError
from rsvg.models.stages.objects import ImageObjects
from rsvg.output_paths import output_lock
from rsvg.synth import write_synthetic_dataset
from rsvg.web.dataset_view import ReviewDataset, default_db_path
from rsvg.web.export import export_reviewed
from rsvg.web.review_db import ReviewStore

runner = CliRunner()


# --- helpers ------------------------------------------------------------------------------------------------------


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file's SHA-256, a link's target, ``dir`` for a folder (hidden ones included)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def invoke(args: list[str | Path]) -> tuple[int, str]:
    """Run ``rsvg ARGS``; the exit code and the output with rich's line wrapping undone."""
    res = runner.invoke(app, [str(a) for a in args], terminal_width=300)
    text = res.output.replace("\n", "")
    assert "Traceback" not in text, res.output
    assert "error: error:" not in text
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, text


def _review(root: Path) -> Path:
    """A review database for ``root`` with one decision of each kind; its path."""
    ds = ReviewDataset(root)
    store = ReviewStore(default_db_path(root), len(ds), ds.fingerprint)
    store.record(0, "alice", "accept")
    store.record(4, "bob", "edit", "The gray car on the left", (11.0, 10.0, 30.0, 40.0))
    return default_db_path(root)


@pytest.fixture(scope="module")
def det_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 128-px synthetic scenes as a detection dataset (written once, copied by each test)."""
    out = tmp_path_factory.mktemp("det") / "det"
    write_synthetic_dataset(out, images=2, size=128, seed=1)
    return out


@pytest.fixture
def work(tmp_path: Path, det_source: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's folder, made the current folder: ``det`` (detection), ``ds`` (grounding, reviewed: holds
    ``review.sqlite3``), ``parent/det`` and ``parent/ds`` (the same, one level down), ``afile`` (a file)."""
    shutil.copytree(det_source, tmp_path / "det")
    shutil.copytree(det_source, tmp_path / "parent" / "det")
    for ds in (tmp_path / "ds", tmp_path / "parent" / "ds"):
        make_official_dataset(ds)
        _review(ds)
    (tmp_path / "afile").write_text("not a folder\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- outputs that are, hold or lie inside an input: refused, nothing changed ------------------------------------

Setup = Callable[[Path], None]


def _link(name: str, target: str) -> Setup:
    return lambda work: (work / name).symlink_to(target, target_is_directory=True)


def _db_inside_out(work: Path) -> None:
    (work / "out").mkdir()
    shutil.copy(work / "ds" / "review.sqlite3", work / "out" / "db.sqlite3")


def _nothing(work: Path) -> None:
    pass


def _chdir(rel: str) -> Setup:
    return lambda work: os.chdir(work / rel)  # the fixture's monkeypatch.chdir restores the folder afterwards


DATA_LOSS_CASES: list[tuple[str, Setup, list[str], list[str]]] = [
    # name, setup in the test folder, arguments, what the message must name
    ("build OUT is the input", _nothing, ["build", "det", "det", "--overwrite"], ["OUT det", "is the input"]),
    ("build OUT holds the input", _nothing, ["build", "parent/det", "parent", "--overwrite"], ["OUT parent", "holds"]),
    ("build OUT inside the input", _nothing, ["build", "det", "det/grounding"], ["det/grounding", "lies inside"]),
    ("build OUT the current folder", _nothing, ["build", "det", ".", "--overwrite"], ["OUT .", "holds the input"]),
    ("build OUT a link to the input", _link("link", "det"), ["build", "det", "link", "--overwrite"], ["OUT link"]),
    ("build input a link to OUT", _link("link", "det"), ["build", "link", "det", "--overwrite"], ["OUT det"]),
    (
        "build OUT holds --class-map",
        lambda work: (work / "parent" / "m.yaml").write_text("car: vehicle\n"),
        ["build", "det", "parent", "--overwrite", "--class-map", "parent/m.yaml"],
        ["OUT parent holds the input --class-map"],
    ),
    (
        "synth OUT the current folder",
        _nothing,
        ["synth", ".", "--images", "1", "--size", "64", "--overwrite"],
        ["OUT ."],
    ),
    ("synth OUT holds the current folder", _chdir("det"), ["synth", "..", "--images", "1", "--overwrite"], ["OUT .."]),
    ("review-export OUT is ROOT", _nothing, ["review-export", "ds", "ds", "--overwrite"], ["OUT ds", "ROOT"]),
    ("review-export OUT holds ROOT", _nothing, ["review-export", "parent/ds", "parent", "--overwrite"], ["holds"]),
    ("review-export OUT inside ROOT", _nothing, ["review-export", "ds", "ds/fixed"], ["ds/fixed", "lies inside"]),
    ("review-export OUT a link to ROOT", _link("lnk", "ds"), ["review-export", "ds", "lnk", "--overwrite"], ["lnk"]),
    (
        "review-export OUT holds --db",
        _db_inside_out,
        ["review-export", "ds", "out", "--db", "out/db.sqlite3", "--overwrite"],
        ["OUT out", "--db"],
    ),
    ("review-export --json the db", _nothing, ["review-export", "ds", "o", "--json", "ds/review.sqlite3"], ["--json"]),
    ("review-export --json in ROOT", _nothing, ["review-export", "ds", "o", "--json", "ds/train.txt"], ["--json"]),
    ("check-data --json a split file", _nothing, ["check-data", "ds", "--json", "ds/train.txt"], ["--json", "ROOT"]),
    (
        "check-data --json an annotation",
        _nothing,
        ["check-data", "det", "--json", "det/Annotations/00001.xml"],
        ["ROOT"],
    ),
]


@pytest.mark.parametrize(("name", "setup", "args", "named"), DATA_LOSS_CASES, ids=[c[0] for c in DATA_LOSS_CASES])
def test_outputs_over_inputs_are_refused_and_nothing_changes(work, name, setup, args, named):
    setup(work)
    before = tree_digest(work)
    code, text = invoke(args)
    assert code == 2, text
    for part in named:
        assert part in text, (part, text)
    assert tree_digest(work) == before


# --- bad paths and options: one clear line, exit 2 ---------------------------------------------------------------


def _write(rel: str, data: bytes) -> Setup:
    def setup(work: Path) -> None:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)

    return setup


def _images_are_a_file(root: str) -> Setup:
    def setup(work: Path) -> None:
        shutil.rmtree(work / root / "JPEGImages")
        (work / root / "JPEGImages").write_text("images\n")

    return setup


def _no_xml(work: Path) -> None:
    for xml in (work / "det" / "Annotations").glob("*.xml"):
        xml.unlink()


REFUSAL_CASES: list[tuple[str, Setup, list[str], list[str]]] = [
    ("synth OUT a file", _nothing, ["synth", "afile", "--images", "1", "--size", "64"], ["OUT afile", "is a file"]),
    ("synth --workers 0", _nothing, ["synth", "s", "--workers", "0"], ["--workers"]),
    ("synth --seed -1", _nothing, ["synth", "s", "--images", "1", "--seed", "-1"], ["--seed"]),
    ("synth --size 10", _nothing, ["synth", "s", "--images", "1", "--size", "10"], ["--size"]),
    ("synth OUT not empty", _write("s/keep.txt", b"x"), ["synth", "s", "--images", "1"], ["OUT s", "--overwrite"]),
    ("build OUT a file", _nothing, ["build", "det", "afile"], ["OUT afile", "is a file"]),
    ("build OUT under a file", _nothing, ["build", "det", "afile/out"], ["afile is a file"]),
    ("build OUT exists", _write("o/x", b"x"), ["build", "det", "o"], ["o already exists", "--overwrite"]),
    ("build DETECTION_ROOT a file", _nothing, ["build", "afile", "o"], ["afile", "is a file"]),
    ("build DETECTION_ROOT missing", _nothing, ["build", "nowhere", "o"], ["nowhere", "not found"]),
    ("build no XML in Annotations", _no_xml, ["build", "det", "o"], ["Annotations holds no *.xml"]),
    ("build JPEGImages a file", _images_are_a_file("det"), ["build", "det", "o"], ["JPEGImages is a file"]),
    ("build --workers 0", _nothing, ["build", "det", "o", "--workers", "0"], ["--workers"]),
    ("build --seed -1", _nothing, ["build", "det", "o", "--seed", "-1"], ["--seed"]),
    ("build --split sums to 0.9", _nothing, ["build", "det", "o", "--split", "0.6,0.1,0.2"], ["--split", "sum"]),
    ("build --split two numbers", _nothing, ["build", "det", "o", "--split", "0.7,0.3"], ["--split", "three"]),
    ("build --split not numbers", _nothing, ["build", "det", "o", "--split", "a,b,c"], ["--split"]),
    ("build --split negative", _nothing, ["build", "det", "o", "--split", "1.2,-0.2,0"], ["--split", "negative"]),
    (
        "build --class-map not text",
        _write("m.yaml", b"\xff\xfe\x00\x81"),
        ["build", "det", "o", "--class-map", "m.yaml"],
        ["m.yaml", "UTF-8"],
    ),
    (
        "build --class-map not YAML",
        _write("m.yaml", b"car: [vehicle\n"),
        ["build", "det", "o", "--class-map", "m.yaml"],
        ["m.yaml", "not valid YAML"],
    ),
    (
        "build --class-map empty",
        _write("m.yaml", b""),
        ["build", "det", "o", "--class-map", "m.yaml"],
        ["m.yaml", "empty"],
    ),
    (
        "build --class-map a list",
        _write("m.yaml", b"- car\n"),
        ["build", "det", "o", "--class-map", "m.yaml"],
        ["m.yaml", "list"],
    ),
    ("build --class-map a folder", _nothing, ["build", "det", "o", "--class-map", "det"], ["--class-map", "det"]),
    ("check-data ROOT a file", _nothing, ["check-data", "afile"], ["afile", "is a file"]),
    ("check-data ROOT missing", _nothing, ["check-data", "nowhere"], ["nowhere", "not found"]),
    ("check-data --json a folder", _nothing, ["check-data", "ds", "--json", "det"], ["--json det", "is a folder"]),
    ("check-data --json under a file", _nothing, ["check-data", "ds", "--json", "afile/r.json"], ["afile is a file"]),
    ("check-data --max-problems -1", _nothing, ["check-data", "ds", "--max-problems", "-1"], ["--max-problems"]),
    ("check-data --kind unknown", _nothing, ["check-data", "ds", "--kind", "mixed"], ["--kind"]),
    ("review-export OUT a file", _nothing, ["review-export", "ds", "afile"], ["OUT afile", "is a file"]),
    ("review-export --json a folder", _nothing, ["review-export", "ds", "o", "--json", "det"], ["--json det"]),
    ("review-export --json under a file", _nothing, ["review-export", "ds", "o", "--json", "afile/s.json"], ["afile"]),
    ("review-export no database", _nothing, ["review-export", "det", "o"], ["det", "no review database"]),
    ("review-export --db a folder", _nothing, ["review-export", "ds", "o", "--db", "det"], ["det is a folder", "--db"]),
]


@pytest.mark.parametrize(("name", "setup", "args", "named"), REFUSAL_CASES, ids=[c[0] for c in REFUSAL_CASES])
def test_bad_paths_and_options_are_refused_before_any_work(work, name, setup, args, named):
    setup(work)
    before = tree_digest(work)
    code, text = invoke(args)
    assert code == 2, text
    for part in named:
        assert part in text, (part, text)
    assert tree_digest(work) == before  # nothing written: no output, no temporary folder, no lock file


# --- what check-data must report (exit 1), as train and eval refuse it --------------------------------------------

DET_IMAGE = Path("det") / "JPEGImages" / "00001.jpg"
DET_XML = Path("det") / "Annotations" / "00001.xml"
DS_XML = Path("ds") / "Annotations" / "00001.xml"  # object 0 (train, split entry 2)


def _det_image(change: Callable[[bytes], bytes]) -> Setup:
    return lambda work: (work / DET_IMAGE).write_bytes(change((work / DET_IMAGE).read_bytes()))


def _det_wrong_size(work: Path) -> None:
    cv2.imwrite(str(work / DET_IMAGE), np.zeros((50, 70, 3), np.uint8))


def _edit(rel: Path, old: str, new: str, count: int = 1) -> Setup:
    def setup(work: Path) -> None:
        text = (work / rel).read_text()
        assert old in text
        (work / rel).write_text(text.replace(old, new, count))

    return setup


def _first_xmin(value: str) -> Setup:
    def setup(work: Path) -> None:
        text = (work / DET_XML).read_text()
        start = text.index("<xmin>") + len("<xmin>")
        (work / DET_XML).write_text(text[:start] + value + text[text.index("</xmin>", start) :])

    return setup


def _split_is_a_folder(work: Path) -> None:
    (work / "ds" / "val.txt").unlink()
    (work / "ds" / "val.txt").mkdir()


def _xml_is_a_folder(work: Path) -> None:
    (work / "ds" / "Annotations" / "00000.xml").mkdir()


CHECK_CASES: list[tuple[str, Setup, str, list[str]]] = [
    # name, corruption, the folder checked, what the report must name
    ("detection: zero-byte image", _det_image(lambda b: b""), "det", ["00001.jpg", "empty file"]),
    ("detection: truncated image", _det_image(lambda b: b[: len(b) // 2]), "det", ["00001.jpg", "truncated"]),
    ("detection: not an image", _det_image(lambda b: b"GIF89a no" * 50), "det", ["00001.jpg", "unreadable_image"]),
    ("detection: image size differs", _det_wrong_size, "det", ["00001.jpg", "is 70x50"]),
    ("detection: non-numeric box", _first_xmin("left"), "det", ["00001.xml [object 0]", "not a number"]),
    ("detection: NaN box", _first_xmin("nan"), "det", ["00001.xml [object 0]", "not a finite number"]),
    ("detection: malformed XML", _write("det/Annotations/00002.xml", b"<annotation><object>"), "det", ["00002.xml"]),
    ("grounding: class not DIOR", _edit(DS_XML, "storagetank", "pond"), "ds", ["00001.xml [object 0]", "'pond'"]),
    ("grounding: NaN box", _edit(DS_XML, "<xmin>50</xmin>", "<xmin>nan</xmin>"), "ds", ["00001.xml [object 0]"]),
    ("grounding: empty train split", _write("ds/train.txt", b""), "ds", ["train.txt", "lists no samples"]),
    ("grounding: empty val split", _write("ds/val.txt", b"\n"), "ds", ["val.txt", "lists no samples"]),
    ("grounding: XML that is a folder", _xml_is_a_folder, "ds", ["00000.xml", "cannot be read"]),
    ("grounding: image folder is a file", _images_are_a_file("ds"), "ds", ["ds/JPEGImages is a file"]),
    ("grounding: split file is a folder", _split_is_a_folder, "ds", ["val.txt", "is not a file"]),
]


@pytest.mark.parametrize(("name", "corrupt", "folder", "named"), CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_check_data_reports_what_would_be_refused_or_skipped(work, name, corrupt, folder, named):
    corrupt(work)
    code, text = invoke(["check-data", folder])
    assert code == 1, text
    for part in named:
        assert part in text, (part, text)
    assert "BROKEN" in text


GROUNDING_REFUSED = [c for c in CHECK_CASES if c[2] == "ds" and "split" not in c[0]]


def _train_refusal(root: Path) -> str:
    """What training on ``root`` with the default (lite) model refuses first: the train and val splits as read,
    the object classes its object head adds to each sample, the images."""
    try:
        train, val = load_split(root, "train"), load_split(root, "val")
        ImageObjects().bind(train)
        verify_images([*train, *val])
    except DatasetError as exc:
        return str(exc)
    raise AssertionError(f"{root}: the train split was accepted")


@pytest.mark.parametrize(
    ("name", "corrupt", "folder", "named"), GROUNDING_REFUSED, ids=[c[0] for c in GROUNDING_REFUSED]
)
def test_train_refuses_what_check_data_reports_in_the_same_words(work, name, corrupt, folder, named):
    corrupt(work)
    refused = _train_refusal(work / "ds")
    code, text = invoke(["check-data", "ds"])
    assert code == 1
    for part in named:
        assert part in refused, (part, refused)
        assert part in text, (part, text)


# --- build names what it skips -------------------------------------------------------------------------------------


def _many_unknown_objects(work: Path) -> None:
    extra = "".join(
        f"<object><name>spaceship</name><bndbox><xmin>{i}</xmin><ymin>1</ymin><xmax>{i + 20}</xmax><ymax>30</ymax>"
        "</bndbox></object>"
        for i in range(1, 8)
    )
    text = (work / DET_XML).read_text()
    (work / DET_XML).write_text(text.replace("</annotation>", extra + "</annotation>"))


def test_build_names_every_skipped_image_and_object(work):
    _many_unknown_objects(work)  # 7 objects of an unknown class in 00001.xml
    (work / "det" / "JPEGImages" / "00002.jpg").write_bytes(b"")  # a zero-byte image
    (work / "det" / "Annotations" / "00003.xml").write_text("<annotation><object>")  # malformed XML
    code, text = invoke(["build", "det", "g"])
    assert code == 0, text
    assert "skipped: " in text and "00001.xml [object" in text and "unknown_class" in text
    assert "more, see g/build_summary.json" in text
    skipped = json.loads((work / "g" / "build_summary.json").read_text())["skipped"]
    reasons = sorted({(Path(e["file"]).name, e["reason"]) for e in skipped})
    assert reasons == [
        ("00001.xml", "unknown_class"),
        ("00002.xml", "unreadable_image"),
        ("00003.xml", "malformed_xml"),
    ]
    assert sum(e["reason"] == "unknown_class" for e in skipped) == 7
    assert all(e["message"] for e in skipped)
    assert any("empty file" in e["message"] and "00002.jpg" in e["message"] for e in skipped)


def test_build_warns_of_an_empty_split(work):
    code, text = invoke(["build", "det", "g", "--split", "1,0,0"])
    assert code == 0, text
    assert "warning: the val split is empty (--split gives it 0)" in text


# --- --overwrite: the old output stays until the new one is complete, whenever the run stops ---------------------


@pytest.fixture
def built(work: Path) -> tuple[Path, dict[str, str]]:
    """A grounding dataset built at ``work/g`` and its digest (the 'old' output an overwrite replaces)."""
    build_dataset(work / "det", work / "g", seed=0)
    return work / "g", tree_digest(work / "g")


def _stop_in_add_image(monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(GroundingDatasetWriter, "add_image", stop)


def _stop_after_the_swap(monkeypatch: pytest.MonkeyPatch) -> None:
    real = partials.exchange_paths

    def swap_then_stop(a: Path, b: Path) -> bool:
        assert real(a, b)
        raise KeyboardInterrupt

    monkeypatch.setattr(partials, "exchange_paths", swap_then_stop)


def _stop_between_the_renames(monkeypatch: pytest.MonkeyPatch) -> None:
    """No atomic exchange (another system): the second of the two renames is interrupted."""
    monkeypatch.setattr(partials, "exchange_paths", lambda a, b: False)
    real = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if str(src).endswith(".partial"):
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


INTERRUPTIONS: list[tuple[str, Callable[[pytest.MonkeyPatch], None], str]] = [
    # name, where the run stops, which output must be at OUT afterwards
    ("while writing", _stop_in_add_image, "old"),
    ("right after the atomic swap", _stop_after_the_swap, "new"),
    ("between two renames", _stop_between_the_renames, "old"),
]


@pytest.mark.parametrize(("name", "stop", "left"), INTERRUPTIONS, ids=[c[0] for c in INTERRUPTIONS])
def test_an_interrupted_overwrite_leaves_a_complete_output(built, monkeypatch, name, stop, left):
    out, old = built
    stop(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(out.parent / "det", out, seed=1, overwrite=True)
    if left == "old":
        assert tree_digest(out) == old
    else:
        assert tree_digest(out) != old and check_dataset(out).ok
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".g")) == []  # no temporary, no lock


def test_an_overwrite_keeps_the_old_output_until_the_new_one_is_complete(built):
    out, old = built
    summary = build_dataset(out.parent / "det", out, seed=1, overwrite=True)
    assert summary.expressions > 0 and tree_digest(out) != old and check_dataset(out).ok
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".g")] == []


# --- one writer per output ----------------------------------------------------------------------------------------

LOCKED_CASES: list[tuple[str, list[str], str]] = [
    ("build", ["build", "det", "g"], "g"),
    ("synth", ["synth", "s", "--images", "1", "--size", "64"], "s"),
    ("review-export", ["review-export", "ds", "r"], "r"),
]


@pytest.mark.parametrize(("name", "args", "out"), LOCKED_CASES, ids=[c[0] for c in LOCKED_CASES])
def test_a_second_writer_of_the_same_output_is_refused(work, name, args, out):
    live = work / f".{out}.abcd1234.partial"  # the first writer's temporary folder, being written
    (live / "Annotations").mkdir(parents=True)
    live_tmp = work / f".{out}.tmp-1-0123abcd"
    (live_tmp / "JPEGImages").mkdir(parents=True)
    before = tree_digest(work)
    with output_lock(work / out, "dataset"):
        code, text = invoke(args)
    assert code == 2, text
    assert "another rsvg process" in text and out in text
    assert live.is_dir() and live_tmp.is_dir()
    digest = tree_digest(work)
    digest.pop(f".{out}.lock", None)  # the lock file the test held
    assert digest == before


def test_library_writers_check_their_outputs_too(work):
    for call in (
        lambda: build_dataset(work / "det", work / "det", overwrite=True),
        lambda: build_dataset(work / "parent" / "det", work / "parent", overwrite=True),
        lambda: write_synthetic_dataset(work, images=1, size=64, overwrite=True),
        lambda: export_reviewed(work / "parent" / "ds", work / "parent", overwrite=True),
        lambda: export_reviewed(work / "ds", work / "x", db_path=work / "x" / "db.sqlite3", overwrite=True),
    ):
        before = tree_digest(work)
        with pytest.raises((OutputPathError, DatasetError)):
            call()
        assert tree_digest(work) == before
