import pytest

from paperkd.config import PRESETS, SCALES, TABLE_ROWS, Config, resolve
from paperkd.errors import ConfigError


def test_defaults_are_the_papers_recipe():
    cfg = Config()
    assert (cfg.batch_size, cfg.epochs, cfg.lr, cfg.crop, cfg.val_size) == (6, 120, 0.007, 513, 513)
    assert (cfg.momentum, cfg.weight_decay, cfg.poly_power, cfg.head_lr_mult) == (0.9, 5e-4, 0.9, 10.0)
    assert (cfg.scale_min, cfg.scale_max, cfg.label_pad, cfg.blur, cfg.sbd) == (0.5, 2.0, 255, False, False)


def test_every_table_row_has_a_preset():
    for rows in TABLE_ROWS.values():
        assert set(rows) <= set(PRESETS)


def test_layers_preset_then_scale_then_overrides():
    cfg = resolve("r18-both", "smoke", teacher="t.pt", dataset="standin", epochs=5, lr=None)
    assert cfg.backbone == "resnet18" and (cfg.pixel, cfg.pair) == (100.0, 1.0)  # preset: the paper's weights
    assert cfg.crop == SCALES["smoke"]["crop"]  # scale
    assert cfg.epochs == 5 and cfg.lr == 0.007  # override; None means "not given"
    assert (cfg.pixel_tap, cfg.pair_tap) == ("decoder", "encoder")  # the paper's best positions


def test_scales_never_change_the_method():
    method = {"pixel", "pair", "gat", "heo", "pixel_tap", "pair_tap", "pixel_variant", "pair_nodes", "lr", "backbone"}
    for scale in SCALES.values():
        assert not method & (set(scale) | set(scale.get("teacher", {})))


def test_cpu_scale_gives_the_teacher_a_longer_schedule_only():
    assert resolve("teacher", "cpu", dataset="standin").epochs == 48
    assert resolve("r18-none", "cpu", dataset="standin").epochs == 8
    assert resolve("teacher", "cpu", dataset="standin", epochs=3).epochs == 3  # an explicit override still wins


def test_pixelwise_default_is_the_authors_reading():
    # "paper" diverges and "paper-mean" collapses to background at alpha = 100 (book: paper vs code)
    assert Config().pixel_variant == "authors"
    other = resolve("r18-pixel", teacher="t", dataset="standin", pixel_variant="paper-mean")
    assert other.pixel_variant == "paper-mean"


def test_gpu_scale_uses_the_whole_split_in_bf16_and_a_longer_teacher_schedule():
    student = resolve("r18-both", "gpu", teacher="t", dataset="standin")
    teacher = resolve("teacher", "gpu", dataset="standin")
    assert (student.max_train_images, student.max_val_images, student.amp, student.crop) == (None, None, True, 161)
    assert teacher.epochs == 2 * student.epochs


def test_positions_presets():
    assert resolve("r18-pixel-middle", teacher="t", dataset="standin").pixel_tap == "encoder"
    assert resolve("r18-pair-end", teacher="t", dataset="standin").pair_tap == "decoder"


@pytest.mark.parametrize("kwargs, words", [
    ({"preset": "r18-nope"}, ["r18-nope", "r18-both", "teacher"]),
    ({"lr": -0.1}, ["lr", "-0.1"]),
    ({"crop": 4097}, ["crop", "4097"]),
    ({"pixel_tap": "middle"}, ["pixel_tap", "encoder", "decoder"]),
    ({"pair_nodes": "edges"}, ["pair_nodes", "channels", "pixels"]),
    ({"backbone": "vgg16"}, ["vgg16", "resnet18", "mobilenet_v2"]),
    ({"label_pad": 7}, ["label_pad", "255"]),
    ({"nonsense": 1}, ["nonsense"]),
    ({"scale": "huge"}, ["huge", "smoke"]),
])
def test_bad_values_fail_with_the_allowed_ones(kwargs, words):
    kwargs = {"dataset": "standin", **kwargs}
    preset, scale = kwargs.pop("preset", "custom"), kwargs.pop("scale", "paper")
    with pytest.raises(ConfigError) as err:
        resolve(preset, scale, **kwargs)
    for word in words:
        assert word in str(err.value)


def test_distilling_without_teacher_and_voc_without_root_fail():
    with pytest.raises(ConfigError, match="--teacher"):
        resolve("r18-pixel", dataset="standin")
    with pytest.raises(ConfigError, match="data_root"):
        resolve("teacher", dataset="voc")
