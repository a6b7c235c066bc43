# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Each loss on one feature map
#
# Every distillation loss of the paper computed on the real feature maps of a teacher and a student DeepLabV3+ for
# one stand-in image, with the maps and matrices each loss compares. The networks have **random weights** (this page
# shows what the losses look at, not what training does to it); only their BatchNorm statistics are measured, on
# the image and its mirror image, so that every pre-ReLU channel is centred and scaled as BatchNorm intends (with
# the initial statistics, a random MobileNet-V2's encoder output is ~1e-8).
# The image is a synthetic stand-in, not a VOC image. To keep the page fast on a CPU, a DeepLabV3+ ResNet-18 plays
# the teacher and a DeepLabV3+ MobileNet-V2 the student; both have the same 256-channel `encoder` (MIDDLE) and
# `decoder` (END) taps as the ResNet-101 teacher.

# %% tags=["parameters"]
data_root = None  # None: the embedded default stand-in
dataset = "standin"  # "standin" or "voc"
scale = "smoke"  # smoke | cpu | gpu | paper (this page trains nothing and looks the same at every scale)
recipe = "authors"  # unused here: this page trains nothing
seeds = [0]
epochs = None
device = "cpu"
results = "runs/book"
reuse = True
# `paperkd calibrate --json` output for the campaign's teacher (the "which weights, really?" table at the end)
calibration_file = "results/calibration/cpu-standin-voclabels-teacher48.json"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from paperkd.data import VOCSegmentation, default_standin, val_transforms
from paperkd.data.palette import colorize
from paperkd.distill import HEO_TAPS
from paperkd.losses import (
    OverhaulDistillation,
    attention_map,
    attention_transfer_loss,
    gam,
    pairwise_loss,
    partial_l2,
    pixelwise_loss,
    pool_and_flatten,
    similarity_matrix,
)
from paperkd.models import deeplabv3plus, tap, tap_bn, tap_channels
from paperkd.records import RecordError, read_json

SIZE = 257  # MIDDLE maps are 17 x 17, END maps 65 x 65 (at the paper's 513: 33 x 33 and 129 x 129)
torch.manual_seed(seeds[0])
root = data_root if data_root is not None else default_standin()
image, label = VOCSegmentation(root, split="val", transforms=val_transforms(SIZE))[0]
calibration = torch.stack([image, image.flip(-1)]).to(device)  # the image and its mirror image
print(f"{dataset} image from {root}: {tuple(image.shape)}")


# %%
def measure_batchnorm(model, images):
    """Random weights, BatchNorm statistics of `images`: one pass in train mode with a cumulative average."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # running stats = the exact mean/var of the batch seen
    model.train()
    with torch.no_grad():
        model(images)
    return model.eval()


TAPS = sorted(set(HEO_TAPS) | {"encoder", "decoder"})
teacher = measure_batchnorm(deeplabv3plus("resnet18").to(device), calibration)
student = measure_batchnorm(deeplabv3plus("mobilenet_v2").to(device), calibration)
with torch.no_grad():
    _, t_feats = tap(teacher, TAPS)(image[None].to(device))
    _, s_feats = tap(student, TAPS)(image[None].to(device))
t_feats = {k: v.cpu() for k, v in t_feats.items()}
s_feats = {k: v.cpu() for k, v in s_feats.items()}
pd.DataFrame({"tap": ["encoder (MIDDLE)", "decoder (END)"],
              "teacher": [tuple(t_feats[k].shape) for k in ("encoder", "decoder")],
              "student": [tuple(s_feats[k].shape) for k in ("encoder", "decoder")]})

# %%
shown = image.permute(1, 2, 0).numpy()
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
axes[0].imshow((shown - shown.min()) / (shown.max() - shown.min()))
axes[0].set_title("stand-in image (normalised)")
axes[1].imshow(colorize(label.numpy()))
axes[1].set_title("its label (cream: 255, ignored)")
for ax in axes:
    ax.axis("off")
plt.show()


# %% [markdown]
# ## Eq. 1: global attention maps, $p = 1$ vs. $p = 2$
#
# `gam(feat, p=1)` is the **signed** channel sum that the pixel-wise loss compares (positive and negative pre-ReLU
# responses survive, shown in red and blue); `gam(feat, p=2)` is the attention map of the GAT baseline, never
# negative. Both at the END (`decoder`) tap.

# %%
def signed_imshow(ax, values, title):
    """Diverging colours centred on zero, so the sign of a pre-ReLU map is visible."""
    bound = float(values.abs().max())
    im = ax.imshow(values.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_title(title)
    ax.axis("off")
    plt.colorbar(im, ax=ax, fraction=0.046)


def plain_imshow(ax, values, title, cmap="viridis"):
    im = ax.imshow(values.numpy(), cmap=cmap)
    ax.set_title(title)
    ax.axis("off")
    plt.colorbar(im, ax=ax, fraction=0.046)


fig, axes = plt.subplots(2, 2, figsize=(8, 7))
for row, (who, feats) in enumerate((("teacher", t_feats), ("student", s_feats))):
    signed_imshow(axes[row, 0], gam(feats["decoder"], 1)[0], f"{who}: GAM p=1 (signed sum)")
    plain_imshow(axes[row, 1], gam(feats["decoder"], 2)[0], f"{who}: GAM p=2 (attention)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Eq. 4-5: the pixel-wise loss, paper vs. authors' code
#
# Left, `variant="paper"`: the signed sums of teacher and student and the per-pixel partial L2 (eq. 4), zero where
# the teacher is not positive and the student is at or below it. Right, `variant="authors"`: the channel mean of
# $A^2$, L2-normalised along one spatial axis as the authors' code does it, and the per-pixel squared difference.
# The loss is the mean of the bottom map in each case, checked against `pixelwise_loss` below.

# %%
t_end, s_end = t_feats["decoder"], s_feats["decoder"]
paper_t, paper_s = gam(t_end, 1)[0], gam(s_end, 1)[0]
# Eq. 4 element by element (for the picture only; the loss itself comes from paperkd.losses).
paper_terms = (paper_t - paper_s).pow(2) * ~((paper_s <= paper_t) & (paper_t <= 0))
authors_t = F.normalize(attention_map(t_end), dim=1)[0]
authors_s = F.normalize(attention_map(s_end), dim=1)[0]
authors_terms = (authors_t - authors_s).pow(2)

assert torch.isclose(paper_terms.mean(), pixelwise_loss(t_end, s_end, variant="paper"))
assert torch.isclose(paper_terms.mean(), partial_l2(paper_t, paper_s))
assert torch.isclose(authors_terms.mean(), pixelwise_loss(t_end, s_end, variant="authors"))

fig, axes = plt.subplots(3, 2, figsize=(8, 10))
signed_imshow(axes[0, 0], paper_t, "paper: teacher signed sum")
signed_imshow(axes[1, 0], paper_s, "paper: student signed sum")
plain_imshow(axes[2, 0], paper_terms, "paper: partial L2 per pixel", cmap="magma")
plain_imshow(axes[0, 1], authors_t, "authors: teacher, column-normalised")
plain_imshow(axes[1, 1], authors_s, "authors: student, column-normalised")
plain_imshow(axes[2, 1], authors_terms, "authors: squared difference", cmap="magma")
plt.tight_layout()
plt.show()
print(f"no penalty (student <= teacher <= 0) on {float((paper_terms == 0).float().mean()):.1%} of the pixels")

# %% [markdown]
# ## Eq. 6-8: the pair-wise loss, channel nodes vs. pixel nodes
#
# The MIDDLE (`encoder`) map is max-pooled to 3 x 3. With `nodes="channels"` (eq. 6 as written) each of the 256
# channels is a node with a 9-vector, so the similarity matrix is 256 x 256 (the top-left 32 x 32 corner is shown);
# with `nodes="pixels"` (the text, eq. 8's normalisation and the authors' code) each of the 9 pooled pixels is a node
# with a 256-vector, and the matrix is 9 x 9.

# %%
t_mid, s_mid = t_feats["encoder"], s_feats["encoder"]
matrices = {nodes: (similarity_matrix(pool_and_flatten(t_mid, nodes, 3))[0],
                    similarity_matrix(pool_and_flatten(s_mid, nodes, 3))[0])
            for nodes in ("channels", "pixels")}
for nodes, (e_t, e_s) in matrices.items():
    assert torch.isclose((e_t - e_s).pow(2).mean(), pairwise_loss(t_mid, s_mid, nodes=nodes))
    print(f"nodes={nodes!r}: E is {tuple(e_t.shape)}")

CROP = 32
fig, axes = plt.subplots(2, 2, figsize=(8, 7.5))
for row, (who, index) in enumerate((("teacher", 0), ("student", 1))):
    channels = matrices["channels"][index][:CROP, :CROP]
    pixels = matrices["pixels"][index]
    for col, (values, title) in enumerate(((channels, f"{who}: channels ({CROP} x {CROP} crop)"),
                                           (pixels, f"{who}: pixels (9 x 9)"))):
        im = axes[row, col].imshow(values.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        axes[row, col].set_title(title)
        plt.colorbar(im, ax=axes[row, col], fraction=0.046)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Every loss for this pair
#
# Each loss at the position the paper uses it, the other position, and both readings where the paper and the code
# differ; `weight` is the paper's ($\alpha = 100$, $\beta = 1$, $\lambda = 1$; Heo et al.'s loss as coded), and
# `weighted` is what the term adds to the cross-entropy. Heo et al.'s connectors are freshly initialised here.

# %%
heo = OverhaulDistillation(teacher_bns=[tap_bn(teacher, name) for name in HEO_TAPS],
                           student_channels=[tap_channels(student, name) for name in HEO_TAPS])
with torch.no_grad():
    heo_value = heo([t_feats[name] for name in HEO_TAPS], [s_feats[name] for name in HEO_TAPS])

POSITIONS = (("decoder", "END"), ("encoder", "MIDDLE"))
rows = []
for variant in ("paper", "paper-normalised", "authors"):
    for name, position in POSITIONS:
        rows.append(("pixel-wise (eq. 5)", f'variant="{variant}"', position, 100.0,
                     pixelwise_loss(t_feats[name], s_feats[name], variant=variant)))
for nodes in ("channels", "pixels"):
    for name, position in POSITIONS[::-1]:
        rows.append(("pair-wise (eq. 6-8)", f'nodes="{nodes}"', position, 1.0,
                     pairwise_loss(t_feats[name], s_feats[name], nodes=nodes)))
for form in ("code", "eq2", "authors"):
    for name, position in POSITIONS:
        rows.append(("GAT (eq. 2)", f'form="{form}"', position, 1.0,
                     attention_transfer_loss(t_feats[name], s_feats[name], form=form)))
rows.append(("Heo et al. (as coded)", "six taps", "stages, MIDDLE, END", 1.0, heo_value))

table = pd.DataFrame(rows, columns=["loss", "reading", "position", "weight", "value"])
table["value"] = [float(v) for v in table["value"]]
table["weighted"] = table["weight"] * table["value"]
table.style.format({"value": "{:.4g}", "weighted": "{:.4g}", "weight": "{:g}"}).hide(axis="index")

# %% [markdown]
# The two readings of the pixel-wise loss live on very different scales. The paper's compares signed sums over 256
# channels, whose values grow with the channel count (and with how alike the channels are); the authors' code
# compares unit-norm maps. Both come with $\alpha = 100$. On these random-weight features, against the
# cross-entropy of an untrained 21-class network (about $\ln 21 \approx 3$), the two weighted terms are:

# %%
CROSS_ENTROPY_AT_START = float(np.log(21))
end_pixelwise = table[(table["loss"] == "pixel-wise (eq. 5)") & (table["position"] == "END")]
for reading, weighted in zip(end_pixelwise["reading"], end_pixelwise["weighted"]):
    print(f"{reading}: alpha * L_pi at END = {weighted:.3g}, "
          f"{weighted / CROSS_ENTROPY_AT_START:.3g} x the cross-entropy of an untrained network")


# %% [markdown]
# ## Which weights, really?
#
# A weight means nothing without the scale of its term. On the first training batches of the campaign's scale, with
# the campaign's teacher and the student at its initialisation, `paperkd calibrate` measures each weighted term
# against the cross-entropy as it enters the objective, under each recipe: its value, the norm of its gradient on
# the student's parameters, and the cosine between its gradient and the cross-entropy's. A gradient ratio near 1e-3
# means the term does nothing; near 100, it drowns the cross-entropy. The file it reads is named below.

# %%
path = Path(calibration_file)
try:
    result = read_json(path, "calibration file") if path.is_file() else None
    if result is not None and not (isinstance(result, dict) and "rows" in result):
        raise RecordError(f"{path} is not a `paperkd calibrate --json` file (no 'rows')")
except RecordError as err:
    display(Markdown(f"**The calibration file could not be read**: {err}"))
    result = None
if result is not None:
    t = result["teacher"]
    miou = f", mIoU {100 * t['miou']:.2f} %" if t["miou"] is not None else ""
    display(Markdown(
        f"From `{path}`: teacher `{t['checkpoint']}` ({t['backbone']}, {t['epochs']} epochs, recipe {t['recipe']}"
        f"{miou}, sha256 `{t.get('sha256', '?')[:12]}`), {result['batches']} training batches at scale "
        f"`{result['scale']}` of "
        f"{result['dataset']} data (a stand-in is **not** VOC), {result['environment']['device']}, "
        f"commit {result['environment']['git_commit']}."))
    weights = pd.DataFrame(result["rows"])
    weights = weights[["recipe", "preset", "term", "reading", "weight", "value_ratio", "grad_ratio", "cosine"]]
    weights = weights.rename(columns={"value_ratio": "w·term / CE", "grad_ratio": "|∇ w·term| / |∇ CE|",
                                      "cosine": "cos(∇ term, ∇ CE)"})
    strongest = weights.loc[weights["|∇ w·term| / |∇ CE|"].idxmax()]
    weakest = weights.loc[weights["|∇ w·term| / |∇ CE|"].idxmin()]
    display(Markdown(
        f"The strongest term is {strongest['term']} of `{strongest['preset']}` under `{strongest['recipe']}` "
        f"(gradient {strongest['|∇ w·term| / |∇ CE|']:.3g} x the CE's), the weakest {weakest['term']} of "
        f"`{weakest['preset']}` under `{weakest['recipe']}` ({weakest['|∇ w·term| / |∇ CE|']:.3g} x)."))
    display(weights.style.format({"weight": "{:g}", "w·term / CE": "{:.3g}", "|∇ w·term| / |∇ CE|": "{:.3g}",
                                  "cos(∇ term, ∇ CE)": "{:.2f}"}).hide(axis="index"))
elif not path.is_file():
    display(Markdown(f"**No calibration file** at `{path}`. `paperkd calibrate --teacher <teacher checkpoint> "
                     f"--scale cpu --data-root <stand-in> --json {path}` writes it."))
