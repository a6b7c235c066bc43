"""Named pre-ReLU feature taps of a DeepLabV3+, captured by forward hooks; the model itself is untouched.

    tapped = tap(model, ["encoder", "decoder"])
    logits, feats = tapped(images)        # feats["encoder"]: (N, 256, H/16, W/16), pre-ReLU

Tap names (``TAP_NAMES``):

- ``stage1``..``stage4``: pre-ReLU outputs of the backbone stages.
  ResNet: the residual sum (last BN + shortcut) of the last block of ``layer1``..``layer4``, before the block's final
  ReLU (strides 4, 8, 16, 16 at OS16). torchvision calls one in-place ``relu`` module several times per block, so a
  forward pre-hook on ``relu`` copies the input of the block's LAST call (counted from a pre-hook on the block).
  MobileNetV2: outputs of ``features[3]``, ``[6]``, ``[13]``, ``[17]`` (24/32/96/320 ch, strides 4, 8, 16, 16 at
  OS16); a MobileNetV2 block ends in a linear projection, so its output is already pre-activation. These are NOT
  the taps of the authors' code for Heo et al. on MobileNet-V2, which takes the pre-ReLU expansion convs of
  ``features[4]``, ``[7]``, ``[14]`` (144/192/576 ch) and ``features[17]`` (book: paper vs code).
- ``encoder``: output of the ASPP projection's BN (``aspp.project[1]``), pre-ReLU, 256 ch, stride 16 (the paper's
  MIDDLE position; pair-wise distillation's M).
- ``decoder``: output of the last decoder 3x3 conv's BN (``decoder.conv2[1]``), pre-ReLU, 256 ch, stride 4 (END).
- ``logits``: the model output at input resolution.

The hooks are registered once, when ``Tapped`` is built; they write into a dict the wrapper hands back and replaces
on every forward, so ``Tapped`` works under ``torch.no_grad``/``inference_mode`` and inside DDP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from torchvision.models.resnet import BasicBlock, Bottleneck

from paperkd.errors import ConfigError
from paperkd.models.backbones import stage_end_bn
from paperkd.vocabulary import STAGES, TAP_NAMES


# How often torchvision's residual blocks call their shared ``relu`` per forward; the last call is the one that
# rectifies the residual sum.
_RELU_CALLS = ((Bottleneck, 3), (BasicBlock, 2))


def tap_names(model: nn.Module) -> tuple[str, ...]:
    """The tap names ``model`` offers (the same for every backbone)."""
    _check_model(model)
    return TAP_NAMES


def _check_model(model: nn.Module) -> None:
    if not all(hasattr(model, part) for part in ("backbone", "aspp", "decoder")):
        raise ConfigError(f"taps need a DeepLabV3Plus (children backbone, aspp, decoder), got {type(model).__name__}")


def _check_name(name: str) -> None:
    if name not in TAP_NAMES:
        raise ConfigError(f"unknown tap name {name!r}; allowed: {', '.join(TAP_NAMES)}")


def _stage_block(model: nn.Module, name: str) -> nn.Module:
    return model.backbone.stage_ends()[STAGES.index(name)]


def tap_bn(model: nn.Module, name: str) -> nn.BatchNorm2d:
    """The BatchNorm behind tap ``name``: for ``encoder``/``decoder`` its output IS the tap; for a ResNet stage it
    is the last block's last BN (``bn3`` of a Bottleneck, ``bn2`` of a BasicBlock) and the tap is its output plus the
    shortcut; for a MobileNetV2 stage, the block's projection BN (plus the shortcut where the block has one).
    Heo et al.'s margins are computed from it. ``logits`` has none (ConfigError)."""
    _check_model(model)
    _check_name(name)
    if name == "encoder":
        return model.aspp.project[1]
    if name == "decoder":
        return model.decoder.conv2[1]
    if name == "logits":
        raise ConfigError("tap 'logits' has no BatchNorm; taps with one: " + ", ".join(TAP_NAMES[:-1]))
    return stage_end_bn(_stage_block(model, name))


def tap_channels(model: nn.Module, name: str) -> int:
    """Channels of tap ``name`` (``logits``: the number of classes)."""
    _check_model(model)
    _check_name(name)
    if name == "logits":
        return model.decoder.classifier.out_channels
    return tap_bn(model, name).num_features


def _hook_residual_block(block: nn.Module, record: Callable[[Tensor], None]) -> list[RemovableHandle]:
    """Record the input of the last ``relu`` call of a torchvision BasicBlock/Bottleneck: its pre-ReLU output.

    The ReLU is in-place, so the tensor is copied before it is rectified; only the last call is copied.
    """
    last_call = next(calls for kind, calls in _RELU_CALLS if isinstance(block, kind))
    calls = 0

    def reset(module: nn.Module, args: tuple) -> None:
        nonlocal calls
        calls = 0

    def on_relu(module: nn.Module, args: tuple) -> None:
        nonlocal calls
        calls += 1
        if calls == last_call:
            record(args[0].clone())

    return [block.register_forward_pre_hook(reset), block.relu.register_forward_pre_hook(on_relu)]


def _hook_output(module: nn.Module, record: Callable[[Tensor], None]) -> list[RemovableHandle]:
    """Record a module's output as it is (the next op must not modify it in place)."""
    return [module.register_forward_hook(lambda m, args, output: record(output))]


class Tapped(nn.Module):
    """``model`` with feature taps: ``forward(x) -> (logits, {name: tensor})``. See the module docstring.

    The wrapped model is ``self.model`` (save ``tapped.model.state_dict()`` to get the model's own keys).
    ``remove()`` takes the hooks off again.
    """

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        super().__init__()
        _check_model(model)
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            _check_name(name)
        self.model = model
        self.names = tuple(dict.fromkeys(names))  # unique, in the given order
        self._captured: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        for name in self.names:
            if name != "logits":
                self._handles += self._hook(name)

    def _record(self, name: str) -> Callable[[Tensor], None]:
        def record(tensor: Tensor) -> None:
            self._captured[name] = tensor

        return record

    def _hook(self, name: str) -> list[RemovableHandle]:
        record = self._record(name)
        if name in ("encoder", "decoder"):
            return _hook_output(tap_bn(self.model, name), record)
        block = _stage_block(self.model, name)
        if isinstance(block, (BasicBlock, Bottleneck)):
            return _hook_residual_block(block, record)
        return _hook_output(block, record)  # MobileNetV2 block: linear output

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self._captured = {}
        logits = self.model(x)
        captured, self._captured = self._captured, {}
        captured["logits"] = logits
        missing = [n for n in self.names if n not in captured]
        if missing:
            raise RuntimeError(f"taps {missing} did not fire during the forward pass")
        return logits, {name: captured[name] for name in self.names}

    def remove(self) -> None:
        """Unregister every hook; the model is as before ``tap``."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def tap(model: nn.Module, names: Iterable[str]) -> Tapped:
    """Wrap ``model`` so that its forward also returns the features ``names`` (see ``TAP_NAMES``).

    Unknown names raise ``ConfigError`` (a ``ValueError``) listing the allowed ones.
    """
    return Tapped(model, names)
