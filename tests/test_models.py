"""paperkd.models: exact parameter counts, shapes, output stride, ImageNet weight loading, feature taps, summary."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from paperkd.errors import ConfigError, PaperkdError
from paperkd.models import (
    BACKBONES,
    MissingWeightsError,
    TAP_NAMES,
    deeplabv3plus,
    model_summary,
    parameter_counts,
    tap,
    tap_bn,
    tap_channels,
    tap_names,
)

# paper.md, "Parameter counts, per part" (21 classes, OS16).
PAPER_COUNTS = {
    "resnet101": {"total": 59_344_309, "backbone": 42_500_160, "aspp": 15_535_104, "decoder": 1_309_045},
    "resnet18": {"total": 16_608_181, "backbone": 11_176_512, "aspp": 4_131_840, "decoder": 1_299_829},
    "mobilenet_v2": {"total": 5_816_053, "backbone": 1_811_712, "aspp": 2_706_432, "decoder": 1_297_909},
}
# Channels of stage1..stage4, low-level feature = stage1.
STAGE_CHANNELS = {"resnet101": (256, 512, 1024, 2048), "resnet18": (64, 128, 256, 512),
                  "mobilenet_v2": (24, 32, 96, 320)}


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: deeplabv3plus(name) for name in BACKBONES}


def images(*size: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))


# --- architecture ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BACKBONES)
def test_parameter_counts_match_the_paper_per_part(models, name):
    assert parameter_counts(models[name]) == PAPER_COUNTS[name]


def test_parameter_counts_only_count_trainable_parameters():
    model = deeplabv3plus("mobilenet_v2", num_classes=2)
    model.backbone.requires_grad_(False)
    counts = parameter_counts(model)
    assert counts["backbone"] == 0
    # 21 -> 2 classes removes 19 x (256 + 1) classifier parameters
    assert counts["decoder"] == PAPER_COUNTS["mobilenet_v2"]["decoder"] - 19 * 257
    assert counts["total"] == counts["aspp"] + counts["decoder"]


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("size", [(65, 65), (97, 81)])
def test_logits_come_back_at_input_resolution(models, name, size):
    model = models[name].eval()
    with torch.no_grad():
        low, high = model.backbone(images(*size))
        logits = model(images(*size))
    assert logits.shape == (1, 21, *size)
    # stride 4 and 16 with 'same' padding: ceil(n / 4), ceil(n / 16)
    assert low.shape[-2:] == tuple(-(-n // 4) for n in size)
    assert high.shape[-2:] == tuple(-(-n // 16) for n in size)
    assert low.shape[1] == STAGE_CHANNELS[name][0]


def test_train_mode_forward_with_a_batch_of_two(models):
    model = models["resnet18"].train()
    assert model(images(65, 65, batch=2)).shape == (2, 21, 65, 65)
    model.eval()


def test_reference_dilations_at_output_stride_16(models):
    r101 = models["resnet101"].backbone
    assert [b.conv2.dilation[0] for b in r101.layer4] == [2, 4, 8]  # multi-grid
    assert r101.layer4[0].conv2.stride == (1, 1) and r101.layer4[0].downsample[0].stride == (1, 1)
    assert {b.conv2.dilation[0] for b in r101.layer3} == {1}
    r18 = models["resnet18"].backbone
    assert [(b.conv1.dilation[0], b.conv2.dilation[0]) for b in r18.layer4] == [(2, 2), (2, 2)]
    assert r18.layer4[0].conv1.stride == (1, 1)
    mnv2 = models["mobilenet_v2"].backbone.features
    depthwise = {i: mnv2[i].conv[-3][0] for i in range(1, 18)}
    assert [i for i, conv in depthwise.items() if conv.stride == (2, 2)] == [2, 4, 7]  # 160-stage (14) not strided
    assert [i for i, conv in depthwise.items() if conv.dilation != (1, 1)] == [17]
    assert depthwise[17].dilation == (2, 2) and depthwise[17].padding == (2, 2)
    assert models["resnet18"].aspp.convs[1][0].dilation == (6, 6)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_output_stride_8(name):
    model = deeplabv3plus(name, output_stride=8).eval()
    assert parameter_counts(model) == PAPER_COUNTS[name]
    assert [conv[0].dilation[0] for conv in model.aspp.convs[1:4]] == [12, 24, 36]
    with torch.no_grad():
        low, high = model.backbone(images(65, 65))
        logits = model(images(65, 65))
    assert high.shape[-2:] == (9, 9) and low.shape[-2:] == (17, 17)
    assert logits.shape == (1, 21, 65, 65)


def test_resnet101_output_stride_8_dilates_layer3_and_layer4():
    backbone = deeplabv3plus("resnet101", output_stride=8).backbone
    assert {b.conv2.dilation[0] for b in backbone.layer3} == {2}
    assert backbone.layer3[0].conv2.stride == (1, 1)
    assert [b.conv2.dilation[0] for b in backbone.layer4] == [4, 8, 16]


def test_bad_choices_name_the_allowed_values():
    with pytest.raises(ConfigError, match="resnet101, resnet18, mobilenet_v2"):
        deeplabv3plus("vgg16")
    with pytest.raises(ConfigError, match="16, 8"):
        deeplabv3plus("resnet18", output_stride=32)
    with pytest.raises(ConfigError, match="num_classes"):
        deeplabv3plus("resnet18", num_classes=0)


def test_eval_is_deterministic_and_train_mode_uses_dropout(models):
    model = models["resnet18"]
    x = images(65, 65, batch=2)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        torch.manual_seed(1)
        first = model(x)
        torch.manual_seed(2)
        assert not torch.equal(first, model(x))
    model.eval()


def test_head_initialisation_follows_the_reference(models):
    model = models["resnet18"]
    bn = model.decoder.conv1[1]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    weight = model.aspp.convs[1][0].weight  # 3x3, 512 in: kaiming normal std = sqrt(2 / (512 * 9))
    assert weight.std().item() == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.02)


# --- ImageNet weights -----------------------------------------------------------------------------------------------

def perturbed_state_dict(network: nn.Module) -> dict[str, torch.Tensor]:
    """A classification state_dict whose every float tensor (BN statistics included) differs from a fresh init."""
    generator = torch.Generator().manual_seed(3)
    return {k: v + torch.rand(v.shape, generator=generator) if v.is_floating_point() else v
            for k, v in network.state_dict().items()}


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    state = perturbed_state_dict(torchvision.models.resnet18(weights=None))
    path = tmp_path_factory.mktemp("weights") / "resnet18-f37072fd.pth"
    torch.save(state, path)
    return path, state


def assert_backbone_is(model, state, dropped):
    loaded = model.backbone.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith(dropped)}
    assert loaded.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(loaded[key], tensor), key


def test_backbone_weights_from_a_state_dict_file(resnet18_file):
    path, state = resnet18_file
    model = deeplabv3plus("resnet18", backbone_weights=path)
    assert_backbone_is(model, state, ("fc.",))
    assert_backbone_is(deeplabv3plus("resnet18", backbone_weights=str(path)), state, ("fc.",))


def test_mobilenet_weights_drop_the_classifier_and_last_conv(tmp_path):
    state = perturbed_state_dict(torchvision.models.mobilenet_v2(weights=None))
    path = tmp_path / "mnv2.pth"
    torch.save(state, path)
    model = deeplabv3plus("mobilenet_v2", backbone_weights=path)
    assert_backbone_is(model, state, ("classifier.", "features.18."))
    # the same file does not fit a ResNet: the error names the file
    with pytest.raises(PaperkdError, match="mnv2.pth.*missing keys"):
        deeplabv3plus("resnet18", backbone_weights=path)


@pytest.mark.parametrize("weights", ["ResNet18_Weights.IMAGENET1K_V1", "IMAGENET1K_V1"])
def test_weights_name_resolves_in_the_hub_cache(resnet18_file, tmp_path, monkeypatch, weights):
    path, state = resnet18_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").symlink_to(path)
    assert_backbone_is(deeplabv3plus("resnet18", backbone_weights=weights), state, ("fc.",))


def test_missing_hub_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(MissingWeightsError) as caught:
        deeplabv3plus("resnet18", backbone_weights="ResNet18_Weights.IMAGENET1K_V1")
    assert isinstance(caught.value, PaperkdError) and isinstance(caught.value, FileNotFoundError)
    message = str(caught.value)
    assert str(expected) in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def test_missing_weights_path_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "resnet18.pth"
    with pytest.raises(MissingWeightsError, match=str(missing)):
        deeplabv3plus("resnet18", backbone_weights=missing)


def test_weights_names_of_another_backbone_or_unknown_are_refused():
    with pytest.raises(ConfigError, match="ResNet18_Weights"):
        deeplabv3plus("resnet18", backbone_weights="ResNet101_Weights.IMAGENET1K_V1")
    with pytest.raises(ConfigError, match="MobileNet_V2_Weights.IMAGENET1K_V1"):
        deeplabv3plus("mobilenet_v2", backbone_weights="IMAGENET9K")


# --- taps -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BACKBONES)
def test_tap_shapes_strides_and_channels(models, name):
    model = models[name].eval()
    tapped = tap(model, TAP_NAMES)
    with torch.no_grad():
        logits, feats = tapped(images(129, 129))
    assert list(feats) == list(TAP_NAMES) == list(tap_names(model))
    stage_sizes = (33, 17, 9, 9)  # strides 4, 8, 16, 16 at OS16
    for stage, channels, size in zip(TAP_NAMES[:4], STAGE_CHANNELS[name], stage_sizes):
        assert feats[stage].shape == (1, channels, size, size), stage
    assert feats["encoder"].shape == (1, 256, 9, 9)
    assert feats["decoder"].shape == (1, 256, 33, 33)
    assert feats["logits"] is logits
    for tap_name, tensor in feats.items():
        assert tap_channels(model, tap_name) == tensor.shape[1]
    tapped.remove()


def test_resnet_stage_taps_are_the_pre_relu_residual_sums(models):
    model = models["resnet18"].eval()
    tapped = tap(model, ["stage1", "stage2", "stage3", "stage4"])
    x = images(65, 65)
    with torch.no_grad():
        _, feats = tapped(x)
        b = model.backbone
        out = b.maxpool(torch.relu(b.bn1(b.conv1(x))))
        for k, layer in enumerate([b.layer1, b.layer2, b.layer3, b.layer4], start=1):
            inp = layer[:-1](out)
            last = layer[-1]
            shortcut = inp if last.downsample is None else last.downsample(inp)
            pre_relu = last.bn2(last.conv2(torch.relu(last.bn1(last.conv1(inp))))) + shortcut
            out = layer(out)
            assert torch.allclose(feats[f"stage{k}"], pre_relu, atol=1e-5), k
            assert torch.equal(torch.relu(feats[f"stage{k}"]), out), k  # the block's output is its ReLU
            assert feats[f"stage{k}"].min() < 0  # pre-ReLU: negatives survive
    tapped.remove()


def test_bottleneck_stage_tap_is_pre_relu(models):
    model = models["resnet101"].eval()
    tapped = tap(model, ["stage4"])
    x = images(65, 65)
    with torch.no_grad():
        _, feats = tapped(x)
        b = model.backbone
        inp = b.layer4[:-1](b.layer3(b.layer2(b.layer1(b.maxpool(torch.relu(b.bn1(b.conv1(x))))))))
        last = b.layer4[-1]
        hidden = torch.relu(last.bn2(last.conv2(torch.relu(last.bn1(last.conv1(inp))))))
        pre_relu = last.bn3(last.conv3(hidden)) + inp
        _, high = b(x)
    assert torch.allclose(feats["stage4"], pre_relu, atol=1e-5)
    assert torch.equal(torch.relu(feats["stage4"]), high)
    assert feats["stage4"].min() < 0
    tapped.remove()


def test_mobilenet_stage_taps_are_block_outputs(models):
    model = models["mobilenet_v2"].eval()
    tapped = tap(model, ["stage1", "stage2", "stage3", "stage4"])
    x = images(65, 65)
    with torch.no_grad():
        _, feats = tapped(x)
        for stage, index in zip(["stage1", "stage2", "stage3", "stage4"], (3, 6, 13, 17)):
            assert torch.equal(feats[stage], model.backbone.features[: index + 1](x)), stage
            assert feats[stage].min() < 0
    tapped.remove()


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_encoder_and_decoder_taps_match_a_manual_forward(models, name):
    model = models[name].eval()
    tapped = tap(model, ["encoder", "decoder"])
    x = images(97, 81)
    with torch.no_grad():
        logits, feats = tapped(x)
        low, high = model.backbone(x)
        aspp, dec = model.aspp, model.decoder
        branches = torch.cat([conv(high) for conv in aspp.convs], dim=1)
        encoder = aspp.project[1](aspp.project[0](branches))
        up = F.interpolate(aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=True)
        fused = dec.conv1(torch.cat([up, dec.low_level(low)], dim=1))
        decoder = dec.conv2[1](dec.conv2[0](fused))
    assert torch.equal(feats["encoder"], encoder)
    assert torch.equal(torch.relu(feats["encoder"]), aspp(high))
    assert torch.equal(feats["decoder"], decoder)
    assert torch.equal(logits, model(x))
    assert feats["encoder"].min() < 0 and feats["decoder"].min() < 0  # pre-ReLU
    tapped.remove()


def test_tap_bn_points_at_the_right_batchnorms(models):
    r18, r101, mnv2 = models["resnet18"], models["resnet101"], models["mobilenet_v2"]
    assert tap_bn(r18, "stage4") is r18.backbone.layer4[-1].bn2
    assert tap_bn(r101, "stage1") is r101.backbone.layer1[-1].bn3
    assert tap_bn(mnv2, "stage3") is mnv2.backbone.features[13].conv[-1]
    assert tap_bn(r18, "encoder") is r18.aspp.project[1]
    assert tap_bn(r18, "decoder") is r18.decoder.conv2[1]
    with pytest.raises(ConfigError, match="no BatchNorm"):
        tap_bn(r18, "logits")


def test_unknown_tap_name_lists_the_allowed_ones(models):
    with pytest.raises(ConfigError, match="stage1, stage2, stage3, stage4, encoder, decoder, logits") as caught:
        tap(models["resnet18"], ["encoder", "aspp"])
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ConfigError, match="'layer5'"):
        tap_channels(models["resnet18"], "layer5")


def test_taps_carry_gradients_in_train_mode(models):
    model = models["resnet18"].train()
    tapped = tap(model, ["stage1", "encoder", "decoder"])
    model.zero_grad()
    logits, feats = tapped(images(65, 65, batch=2))
    assert feats["stage1"].min() < 0 and feats["stage1"].requires_grad
    feats["stage1"].square().mean().backward()  # in-place ReLU after the copy must not break autograd
    assert model.backbone.layer1[-1].conv2.weight.grad.abs().sum() > 0
    assert model.backbone.layer2[0].conv1.weight.grad is None  # stage1 does not depend on layer2
    tapped.remove()
    model.zero_grad()
    model.eval()


def test_taps_work_under_inference_mode_and_do_not_leak_between_calls(models):
    model = models["mobilenet_v2"].eval()
    tapped = tap(model, "decoder")
    with torch.no_grad():
        _, first = tapped(images(65, 65, seed=1))
    with torch.inference_mode():
        _, second = tapped(images(65, 65, seed=2))
        _, again = tapped(images(65, 65, seed=1))
    assert list(first) == ["decoder"]
    assert not torch.equal(first["decoder"], second["decoder"])
    assert torch.equal(first["decoder"], again["decoder"])


def test_remove_leaves_the_model_untouched(models):
    model = models["resnet18"]
    hooked = [model.backbone.layer1[-1], model.backbone.layer1[-1].relu, model.aspp.project[1]]
    tapped = tap(model, ["stage1", "encoder"])
    assert all(m._forward_pre_hooks or m._forward_hooks for m in hooked)
    tapped.remove()
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in hooked)


def test_taps_inside_distributed_data_parallel(models, tmp_path):
    import torch.distributed as dist

    model = models["mobilenet_v2"].eval()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(tap(model, ["encoder", "stage2"]))
        x = images(65, 65)
        logits, feats = ddp(x)
        assert feats["encoder"].shape == (1, 256, 5, 5) and feats["stage2"].shape == (1, 32, 9, 9)
        with torch.no_grad():
            assert torch.equal(logits, model(x))
        ddp.module.remove()
    finally:
        dist.destroy_process_group()


# --- summary --------------------------------------------------------------------------------------------------------

def conv_flops(model: nn.Module, x: torch.Tensor) -> int:
    """2 x multiply-adds of every conv, from the output shapes seen by hooks (FlopCounterMode's convention)."""
    total = 0

    def count(conv, args, output):
        nonlocal total
        total += 2 * output.numel() * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return total


def test_model_summary_at_a_small_size(models):
    summary = model_summary("resnet18", input_size=65, repeats=1)
    counts = PAPER_COUNTS["resnet18"]
    assert {k: summary[f"params_{k}"] for k in counts} == counts
    assert summary["gflops"] * 1e9 == pytest.approx(conv_flops(models["resnet18"].eval(), images(65, 65)), rel=1e-9)
    assert summary["latency_ms"] > 0 and summary["input_size"] == 65 and summary["device"] == "cpu"
