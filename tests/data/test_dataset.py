"""The torch Dataset: sample contents, exact box mapping, tokenizer, determinism of augmentation."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from helpers.datasets import make_official_dataset, write_official_xml
from rsvg.data.categories import DIOR_CLASSES
from rsvg.data.dataset import RSVGDataset, box_to_original
from rsvg.data.image_io import ImageReadError, read_image_rgb
from rsvg.data.records import DatasetError
from rsvg.data.tokenizer import HFTokenizer
from rsvg.data.transforms import RandomHorizontalFlip
from rsvg.engine.batching import collate
from rsvg.models.stages.objects import ImageObjects


@pytest.fixture
def tokenizer(tmp_path):
    d = tmp_path / "tok"
    d.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "a", "vehicle", "ship", "on", "left", "right", "large"]
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    return HFTokenizer.from_pretrained(d)


def test_sample_contents(official_dataset, tokenizer):
    ds = RSVGDataset(official_dataset, "test", image_size=64, tokenizer=tokenizer, max_tokens=10)
    assert len(ds) == 2
    s = ds[0]  # index 4: "The gray vehicle on the left", box (10, 10, 30, 40) in a 200x160 image
    assert s["index"] == 4 and s["image_id"] == "00003" and s["category"] == "vehicle"
    assert s["query"] == "The gray vehicle on the left"
    assert s["image"].shape == (3, 64, 64) and s["image"].dtype == torch.float32
    assert s["padding_mask"].shape == (64, 64)
    # 200x160 -> 64x51 centred: 13 rows of padding in all (6 on top, 7 below)
    assert int(s["padding_mask"][:, 0].sum()) == 13 and not s["padding_mask"][6:57, :].any()
    assert torch.all(s["image"][:, s["padding_mask"]] == 0)
    assert s["orig_size"].tolist() == [160, 200]
    sx, sy, px, py = s["letterbox"].tolist()
    assert (sx, sy, px, py) == pytest.approx((64 / 200, 51 / 160, 0, 6))
    np.testing.assert_allclose(s["box"].numpy(), [10 * sx, 10 * sy + 6, 30 * sx, 40 * sy + 6], rtol=1e-6)
    assert s["input_ids"].shape == (10,) and s["input_ids"][0] == 2
    assert s["attention_mask"].tolist() == [1] * 8 + [0] * 2  # CLS the [UNK] vehicle on the left SEP


def test_batch_inverse_mapping_is_exact(official_dataset):
    ds = RSVGDataset(official_dataset, "train", image_size=96)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    back = box_to_original(batch["box"].double(), batch["letterbox"])
    np.testing.assert_allclose(back.numpy(), batch["orig_box"].numpy(), atol=1e-4)  # float32 network boxes
    assert batch["query"][0] == "The white vehicle on the right"


def test_augmentation_is_deterministic_per_epoch_and_remaps_query(official_dataset):
    ds = RSVGDataset(official_dataset, "test", image_size=64, augment=RandomHorizontalFlip(1.0), seed=3)
    s = ds[0]
    assert s["query"] == "The gray vehicle on the right"
    np.testing.assert_allclose(s["orig_box"].numpy(), [170, 10, 190, 40])
    a, b = ds[1], ds[1]
    assert torch.equal(a["image"], b["image"])


def test_bad_split_and_bad_image(official_dataset, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        RSVGDataset(official_dataset, "dev")
    (official_dataset / "JPEGImages" / "00003.jpg").write_bytes(b"not an image")
    ds = RSVGDataset(official_dataset, "test")
    with pytest.raises(ImageReadError, match=r"00003\.jpg"):
        ds[0]
    with pytest.raises(ImageReadError, match="not found"):
        read_image_rgb(tmp_path / "none.png")
    (official_dataset / "val.txt").write_text("99\n")
    with pytest.raises(DatasetError, match="outside"):
        RSVGDataset(official_dataset, "val")


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    import cv2

    gray = np.full((5, 7), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 2] = 200  # red in BGRA
    rgba[..., 3] = 255
    cv2.imwrite(str(tmp_path / "r.png"), rgba)
    assert read_image_rgb(tmp_path / "g.png").shape == (5, 7, 3)
    assert read_image_rgb(tmp_path / "r.png")[0, 0].tolist() == [200, 0, 0]


def test_image_objects_list_every_object_the_split_annotates_in_the_image(tmp_path):
    root = make_official_dataset(tmp_path / "d", {"train": [4, 1, 2, 3], "val": [0, 5], "test": []})
    ds = RSVGDataset(root, "train", image_size=100, extras=[ImageObjects()])
    s = ds[1]  # 00002: the service area; its image also holds the two ships
    assert s["image_id"] == "00002" and s["category_index"] == DIOR_CLASSES.index("Expressway-Service-area")
    objects = s["objects"]
    assert objects.shape == (3, 5)
    assert sorted(objects[:, 0].long().tolist()) == sorted(
        DIOR_CLASSES.index(c) for c in ("Expressway-Service-area", "ship", "ship")
    )
    # boxes in the network frame, like "box": 200x160 -> 100x80 centred (10 rows of padding on top)
    row = objects[objects[:, 0] == DIOR_CLASSES.index("Expressway-Service-area")][0]
    torch.testing.assert_close(row[1:], s["box"])
    np.testing.assert_allclose(row[1:].numpy(), [2.5, 12.5, 75, 70], rtol=1e-6)
    assert ds[0]["objects"].shape == (1, 5)  # 00003: its other vehicle is in no training expression here
    without = RSVGDataset(root, "train", image_size=100, extras=[ImageObjects()], load_images=False)[1]
    torch.testing.assert_close(without["objects"], objects)
    batch = collate([ds[0], ds[1]])
    assert [len(o) for o in batch["objects"]] == [1, 3] and batch["category_index"].shape == (2,)
    with pytest.raises(ValueError, match="image_objects does not follow augmentation"):
        RSVGDataset(root, "train", extras=[ImageObjects()], augment=RandomHorizontalFlip(0.5))


def test_image_objects_name_a_category_outside_dior(tmp_path):
    root = make_official_dataset(tmp_path / "d")
    xml = root / "Annotations" / "00001.xml"
    pond = {"name": "pond", "box": (50, 60, 90, 100), "description": "A pond"}
    write_official_xml(xml, "00001.jpg", 200, 160, [pond])
    assert [s.category for s in RSVGDataset(root, "train").samples].count("pond") == 1  # fine without the head
    with pytest.raises(DatasetError, match=r"00001\.xml.*'pond' is not a DIOR class"):
        RSVGDataset(root, "train", extras=[ImageObjects()])
