import pytest

import dataclasses

from paperkd.config import DEFAULT_RECIPE, PRESETS, RECIPES, SCALES, TABLE_ROWS, Config, from_dict, resolve, scheduled_epochs
from paperkd.errors import ConfigError


def test_defaults_are_the_papers_setup_and_the_default_recipe():
    cfg = Config()
    assert (cfg.batch_size, cfg.epochs, cfg.lr, cfg.crop, cfg.val_size) == (6, 120, 0.007, 513, 513)
    assert (cfg.momentum, cfg.weight_decay, cfg.poly_power, cfg.head_lr_mult) == (0.9, 5e-4, 0.9, 10.0)
    assert (cfg.scale_min, cfg.scale_max, cfg.sbd) == (0.5, 2.0, False)
    # the bare dataclass is the default recipe, so Config() and resolve() agree
    assert cfg.recipe == DEFAULT_RECIPE == "authors"
    assert {k: getattr(cfg, k) for k in RECIPES["authors"]} == RECIPES["authors"]
    assert cfg.recipe_deviations() == {}


def test_both_recipes_set_the_same_fields_and_differ_in_each_reading():
    assert set(RECIPES) == {"authors", "paper"} and RECIPES["authors"].keys() == RECIPES["paper"].keys()
    known = {f.name for f in dataclasses.fields(Config)}
    assert RECIPES["authors"].keys() <= known
    authors, paper = RECIPES["authors"], RECIPES["paper"]
    assert (authors["seg_batch_average"], paper["seg_batch_average"]) == (True, False)  # item 1
    assert (authors["connector_warmup_epochs"], paper["connector_warmup_epochs"]) == (1, 0)  # item 2
    assert (authors["pair_nodes"], paper["pair_nodes"]) == ("pixels", "channels")  # eq. 6 as written vs the code
    assert (authors["gat_form"], paper["gat_form"]) == ("authors", "eq2")
    assert (authors["model_selection"], paper["model_selection"]) == ("best", "last")
    assert (authors["val_mode"], paper["val_mode"]) == ("short_side", "square")


def test_recipe_is_a_layer_under_preset_scale_and_overrides():
    cfg = resolve("r18-both", "smoke", recipe="paper", teacher="t.pt", dataset="standin")
    assert cfg.recipe == "paper" and cfg.pair_nodes == "channels" and cfg.seg_batch_average is False
    assert cfg.recipe_deviations() == {}
    cfg = resolve("r18-both", "smoke", recipe="paper", teacher="t.pt", dataset="standin", pair_nodes="pixels")
    assert cfg.recipe == "paper" and cfg.recipe_deviations() == {"pair_nodes": "pixels"}  # named, not hidden
    assert resolve("r18-none", dataset="standin").recipe == "authors"  # the default


def test_unknown_recipe_and_impossible_warmup_fail_with_one_line_naming_them():
    with pytest.raises(ConfigError, match="unknown recipe 'authorz'; choose one of: authors, paper"):
        resolve("r18-none", recipe="authorz", dataset="standin")
    with pytest.raises(ConfigError, match="model_selection='better' is not allowed; choose one of: last, best"):
        resolve("r18-none", dataset="standin", model_selection="better")
    with pytest.raises(ConfigError, match="connector_warmup_epochs=2 leaves no epoch.*epochs=2"):
        resolve("r18-pixel", "smoke", teacher="t", dataset="standin", connector_warmup_epochs=2)


def test_a_record_from_before_the_recipes_is_rebuilt_as_what_it_ran_never_as_a_recipe():
    old = {k: v for k, v in Config().to_dict().items() if k not in RECIPES["authors"] and k != "recipe"}
    old.update(pixel_variant="authors", pair_nodes="channels")
    cfg = from_dict(old)
    assert cfg.recipe == "pre-recipe"
    assert (cfg.seg_batch_average, cfg.connector_warmup_epochs, cfg.model_selection) == (False, 0, "last")
    assert (cfg.pixel_variant, cfg.pair_nodes, cfg.pair_detach_norm) == ("authors", "channels", False)


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
    method = {"pixel", "pair", "gat", "heo", "pixel_tap", "pair_tap", "lr", "backbone", "recipe", *RECIPES["authors"]}
    for scale in SCALES.values():
        assert not method & (set(scale) | {k for only in scale.get("presets", {}).values() for k in only})


def test_cpu_scale_gives_the_teacher_a_longer_schedule_only():
    assert resolve("teacher", "cpu", dataset="standin").epochs == 60
    assert resolve("r18-none", "cpu", dataset="standin").epochs == 10
    assert resolve("teacher", "cpu", dataset="standin", epochs=3).epochs == 3  # an explicit override still wins


def test_pixelwise_reading_follows_the_recipe_and_stays_overridable():
    # "paper" diverges and "paper-mean" collapses to background at alpha = 100 (book: paper vs code)
    assert Config().pixel_variant == "authors"
    assert resolve("r18-pixel", recipe="paper", teacher="t", dataset="standin").pixel_variant == "paper-normalised"
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


def test_scale_name_follows_the_values_not_the_recorded_name():
    from paperkd.config import scale_name

    now = resolve("r18-none", "cpu", dataset="standin").to_dict()
    assert scale_name(now) == "cpu"
    earlier = {**now, "max_train_images": 240, "max_val_images": 240, "epochs": 8}  # what records of "cpu" said
    assert scale_name(earlier) == "cpu-240"
    assert scale_name({**now, "crop": 99}) == "cpu"  # an override is not another scale
    assert scale_name(resolve("r18-none", "smoke", dataset="standin").to_dict()) == "smoke"


def test_scheduled_epochs_are_the_epochs_resolve_gives():
    for scale in SCALES:
        for preset in PRESETS:
            plain = preset == "teacher" or preset.endswith(("-none", "-none-compute"))
            epochs = resolve(preset, scale, dataset="standin", teacher=None if plain else "teacher.pt").epochs
            assert scheduled_epochs(preset, scale) == epochs, (preset, scale)
    assert scheduled_epochs("teacher", "cpu") == 60 and scheduled_epochs("r18-none-compute", "cpu") == 20
