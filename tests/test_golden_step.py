"""Golden steps: one optimisation step of every distilled preset of Tables 1-3, under each recipe, equals an
independent re-implementation written here (loss value and every updated weight and buffer, to 1e-6).

The re-implementation shares only the models and their feature taps with paperkd (tested in test_models). The
cross-entropy and its batch division, every loss formula (as the authors' code writes it for `authors`, as the
paper prints it for `paper`), Heo's margins and connectors, the ASPP dropout the authors' feature path skips, the
teacher's train or eval mode, the learning rates of the parameter groups at a poly-scheduled iteration, and the SGD
update (momentum buffer = first gradient + weight decay) are written out again from paper.md.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from paperkd.checkpoint import save_checkpoint
from paperkd.config import PRESETS, TABLE_ROWS, resolve
from paperkd.models import deeplabv3plus, tap, tap_bn
from paperkd.step import StepTimer, build_step, load_teacher, optimisation_step

DISTILLED = [p for p in dict.fromkeys(r for rows in TABLE_ROWS.values() for r in rows)
             if p != "teacher" and p.split("-", 1)[1] != "none"]
SIX = ("stage1", "stage2", "stage3", "stage4", "encoder", "decoder")
SIZE, BATCH = 33, 2  # stride 16 -> a 3 x 3 encoder map, pooled by the authors' kernel int(0.5 * 3) = 1
MAX_ITER, ITERATION = 8, 3  # a mid-schedule step: lr factor (1 - 3/8) ** 0.9


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
    torch.manual_seed(100)
    teacher = deeplabv3plus("resnet101")
    with torch.no_grad():  # non-trivial BN affine parameters, so that Heo's margins differ per channel
        for m in teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    path = tmp_path_factory.mktemp("golden") / "teacher.pt"
    cfg = resolve("teacher", dataset="standin")
    save_checkpoint(path, {"config": cfg.to_dict(), "model": teacher.state_dict()})
    return path


def batch():
    g = torch.Generator().manual_seed(7)
    images = torch.randn(BATCH, 3, SIZE, SIZE, generator=g)
    target = torch.randint(0, 21, (BATCH, SIZE, SIZE), generator=g)
    target[:, :4] = 255  # an ignored border
    return images, target


# ------------------------------------------------------------------ the re-implementation

def ce(logits, target, recipe):
    loss = F.cross_entropy(logits, target, ignore_index=255)
    return loss / logits.shape[0] if recipe == "authors" else loss  # SegmentationLosses(batch_average=True)


def column_normalised(f):
    a = f.pow(2).mean(1)  # (B, H, W)
    return a / a.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-12)  # F.normalize(a) on dim 1: the columns


def authors_attention(t, s):
    return (column_normalised(t) - column_normalised(s)).pow(2).mean()


def partial_l2_mean(t, s):
    mask = ~((s <= t) & (t <= 0))
    return ((t - s).pow(2) * mask).mean()


def pixelwise(t, s, recipe):
    if recipe == "authors":
        return authors_attention(t, s)
    g_t, g_s = t.sum(1), s.sum(1)  # eq. 1 with p = 1, signed
    unit = [g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1) for g in (g_t, g_s)]
    return partial_l2_mean(*unit)  # eq. 4-5 on per-image unit-norm maps (the nearest reading that trains)


def pairwise(t, s, recipe):
    k = int(0.5 * t.shape[-1])
    pool = lambda x: F.max_pool2d(x, k, k, ceil_mode=True)  # noqa: E731

    def similarity(x):
        x = pool(x).flatten(2)  # (B, C, 9)
        if recipe == "authors":  # cells as nodes, the norm over channels detached (+1e-8)
            x = x / (x.norm(dim=1, keepdim=True) + 1e-8).detach()
            return torch.einsum("bcm,bcn->bmn", x, x)
        x = x / (x.norm(dim=2, keepdim=True) + 1e-8)  # channels as nodes (eq. 6), eq. 7's gradient
        return x @ x.transpose(1, 2)

    e_t, e_s = similarity(t), similarity(s)
    return (e_t - e_s).pow(2).sum() / e_t.shape[1] ** 2 / t.shape[0]


def gat(t_feats, s_feats, recipe):
    if recipe == "authors":
        return sum(authors_attention(t_feats[n], s_feats[n]) for n in SIX)
    g_t = F.normalize(t_feats["decoder"].pow(2).sum(1).flatten(1), dim=1)
    g_s = F.normalize(s_feats["decoder"].pow(2).sum(1).flatten(1), dim=1)
    return (g_t - g_s).norm(dim=1).mean()  # eq. 2, a norm


def heo_margin(bn):
    margins = []
    for gamma, beta in zip(bn.weight.tolist(), bn.bias.tolist()):
        s, m = abs(gamma), beta
        cdf = 0.5 * (1 + math.erf(-m / s / math.sqrt(2)))
        pdf = math.exp(-((m / s) ** 2) / 2) / math.sqrt(2 * math.pi)
        margins.append(m - s * pdf / cdf if cdf > 0.001 else -3 * s)
    return torch.tensor(margins).view(1, -1, 1, 1)


def heo(t_feats, s_feats, connectors, margins):
    total = 0.0
    for name, connector, margin, divisor in zip(SIX, connectors, margins, (8, 4, 2, 1, 1, 16)):
        t = torch.max(t_feats[name], margin)
        s = connector(s_feats[name])
        total = total + ((s - t).pow(2) * ((s > t) | (t > 0))).sum() / divisor
    return total / t_feats["stage1"].shape[0] * 1e-5


def reference_step(preset, recipe, student, teacher, connectors, margins, images, target, lr_factor, warmup):
    """One step written out again: returns (loss, the student's and connectors' state after the step)."""
    cfg_weights = PRESETS[preset]
    pixel_tap = cfg_weights.get("pixel_tap", "decoder")
    pair_tap = cfg_weights.get("pair_tap", "encoder")
    if recipe == "authors":  # their feature path skips the ASPP dropout, for the student and the teacher
        student.aspp.project[3] = torch.nn.Identity()
        teacher.aspp.project[3] = torch.nn.Identity()
    teacher.train(recipe == "authors")  # the authors' trainer runs the teacher in train mode
    student.train()
    taps = list(SIX)
    with torch.no_grad():
        _, t_feats = tap(teacher, taps)(images)
    logits, s_feats = tap(student, taps)(images)
    loss = ce(logits, target, recipe)
    if "pixel" in cfg_weights:
        loss = loss + 100 * pixelwise(t_feats[pixel_tap], s_feats[pixel_tap], recipe)
    if "pair" in cfg_weights:
        loss = loss + 1 * pairwise(t_feats[pair_tap], s_feats[pair_tap], recipe)
    if "gat" in cfg_weights:
        loss = loss + 1 * gat(t_feats, s_feats, recipe)
    if "heo" in cfg_weights:
        loss = loss + heo(t_feats, s_feats, connectors, margins)
    groups = [(list(student.backbone.parameters()), 0.007),
              (list(student.aspp.parameters()) + list(student.decoder.parameters()), 0.07),
              (list(connectors.parameters()), 0.07)]
    if warmup:  # the connectors alone, at the base lr
        groups = [([], 0.0), ([], 0.0), (list(connectors.parameters()), 0.007)]
    stepped = [p for params, _ in groups for p in params]
    grads = torch.autograd.grad(loss, stepped, allow_unused=True) if stepped else []
    with torch.no_grad():
        i = 0
        for params, lr in groups:
            for p in params:
                g = grads[i] if grads[i] is not None else None
                i += 1
                if g is not None:  # SGD's first step: buffer = g + wd * p
                    p -= lr * lr_factor * (g + 5e-4 * p)
    return loss.detach(), student.state_dict(), connectors.state_dict()


# ------------------------------------------------------------------ the comparison

def paperkd_and_reference(preset, recipe, teacher_checkpoint, warmup=False):
    images, target = batch()
    cfg = resolve(preset, recipe=recipe, teacher=str(teacher_checkpoint), dataset="standin", batch_size=BATCH,
                  crop=SIZE)
    torch.manual_seed(1)
    student = deeplabv3plus(cfg.backbone)
    teacher = load_teacher(cfg, torch.device("cpu"))
    ref_student, ref_teacher = copy.deepcopy(student), copy.deepcopy(teacher)
    step = build_step(cfg, student, teacher, torch.device("cpu"), max_iter=MAX_ITER,
                      warmup_iters=ITERATION + 1 if warmup else 0)
    connectors = torch.nn.ModuleList()
    margins = []
    if step.distill is not None and step.distill.heo is not None:
        connectors = copy.deepcopy(step.distill.heo.connectors)
        margins = [heo_margin(bn) for bn in teacher_bns(ref_teacher)]
    step.student_net.train()
    torch.manual_seed(2)
    loss, _, _ = optimisation_step(step, images, target, ITERATION, StepTimer(torch.device("cpu")))
    torch.manual_seed(2)
    ref_loss, ref_state, ref_connectors = reference_step(
        preset, recipe, ref_student, ref_teacher, connectors, margins, images, target,
        (1 - ITERATION / MAX_ITER) ** 0.9, warmup)
    return (loss.detach(), student.state_dict(), step.distill.heo.connectors.state_dict() if connectors else {},
            ref_loss, ref_state, ref_connectors)


def teacher_bns(teacher):
    """The BN before each of the six teacher taps (which BN that is, is the models' knowledge, tested there)."""
    return [tap_bn(teacher, name) for name in SIX]


def assert_states_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-6, msg=lambda m: f"{key}: {m}")


@pytest.mark.parametrize("recipe", ["authors", "paper"])
@pytest.mark.parametrize("preset", ["r18-none", *DISTILLED])
def test_one_step_equals_the_reimplementation(preset, recipe, teacher_checkpoint):
    loss, state, conn, ref_loss, ref_state, ref_conn = paperkd_and_reference(preset, recipe, teacher_checkpoint)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    assert_states_equal(state, ref_state)
    assert_states_equal(conn, ref_conn)


def test_heo_warmup_step_trains_only_the_connectors_at_the_base_lr(teacher_checkpoint):
    torch.manual_seed(1)
    before = deeplabv3plus("resnet18").state_dict()
    loss, state, conn, ref_loss, ref_state, ref_conn = paperkd_and_reference(
        "r18-heo", "authors", teacher_checkpoint, warmup=True)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    assert_states_equal(state, ref_state)
    assert_states_equal(conn, ref_conn)
    weights = [k for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(before[k], state[k]) for k in weights)  # the student is not updated
    assert any(not torch.equal(before[k], state[k]) for k in before if k.endswith("running_mean"))  # BN stats move


def test_warmup_without_connectors_updates_nothing_but_batch_statistics(teacher_checkpoint):
    torch.manual_seed(1)
    before = deeplabv3plus("resnet18").state_dict()
    loss, state, _, ref_loss, ref_state, _ = paperkd_and_reference("r18-both", "authors", teacher_checkpoint,
                                                                    warmup=True)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    assert_states_equal(state, ref_state)
    weights = [k for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(before[k], state[k]) for k in weights)
