"""The names every other module agrees on, declared once: backbones, tap positions, loss terms and their readings,
recipes, the ignore label. Plain constants, no imports, so that any module may import them without a cycle.
"""

BACKBONES = ("resnet101", "resnet18", "mobilenet_v2")
NUM_CLASSES = 21  # Pascal VOC: 20 object classes and background
IGNORE_INDEX = 255  # VOC's "void" border label: no loss, no metric

# Taps (`paperkd.models.tap`). MIDDLE and END of Table 3 are `encoder` and `decoder`.
POSITIONS = ("encoder", "decoder")
STAGES = ("stage1", "stage2", "stage3", "stage4")
TAP_NAMES = (*STAGES, *POSITIONS, "logits")
# The six pre-ReLU taps of the authors' DeepLabV3+ (`extract_feature`): four backbone stages, ASPP, decoder. Heo et
# al.'s baseline uses all six; so does the authors' attention transfer (`gat_tap="all"`).
PRE_RELU_TAPS = (*STAGES, *POSITIONS)
ALL_TAPS = "all"

# Readings of the losses where the paper and the authors' code disagree (see each loss's docstring).
PIXELWISE_VARIANTS = ("paper", "paper-mean", "paper-normalised", "authors")
PAIRWISE_NODES = ("channels", "pixels")
ATTENTION_FORMS = ("code", "eq2", "authors")

# Loss terms of a student's objective: name -> (weight field, position field) of `paperkd.config.Config`. The
# position field is None where the term's taps are fixed (Heo: the six pre-ReLU taps; logit KD: the logits).
LOSS_TERMS = {
    "pixel": ("pixel", "pixel_tap"),
    "pair": ("pair", "pair_tap"),
    "gat": ("gat", "gat_tap"),
    "heo": ("heo", None),
    "logit_kd": ("logit_kd", None),
    "cwd": ("cwd", "cwd_tap"),
}

MODEL_SELECTIONS = ("last", "best")
SCALE_OF = ("image", "crop")
VAL_MODES = ("square", "short_side")
DATASETS = ("standin", "voc")
AMP_DTYPES = ("bf16", "fp16")

# The parts of one training iteration the trainer times, in order (the time columns of Tables 2 and 3).
TIMED_PARTS = ("data", "teacher_forward", "student_forward", "losses", "backward_step")
