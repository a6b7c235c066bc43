"""`paperkd` command line: train, eval, predict, save-predictions, campaign, calibrate, make-standin, check-data, info,
bench, book.

Expected problems (missing files, bad values) are printed as one line without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from paperkd.config import (DEFAULT_RECIPE, PIXEL_VARIANTS, PRESETS, RECIPES, SCALES, Config, layered_values,
                             scheduled_epochs)
from paperkd.errors import PaperkdError

# One line per Config field for `paperkd train --help`; the default printed next to it is the paper's.
HELP = {
    "backbone": "student/teacher backbone",
    "num_classes": "classes including background",
    "output_stride": "encoder output stride (8 or 16)",
    "backbone_weights": "ImageNet weights: a torchvision state_dict file or a weights name such as "
                        "ResNet18_Weights.IMAGENET1K_V1 (looked up in the torch hub cache, never downloaded)",
    "teacher": "checkpoint of the trained teacher (students that distil)",
    "teacher_train_mode": "run the frozen teacher in train mode (batch statistics), as the authors' code does",
    "allow_any_teacher": "accept a --teacher that is not a finished run of the teacher preset (a student's "
                         "checkpoint, an unfinished run): only when that is intended",
    "pixel": "alpha, weight of the pixel-wise loss (eq. 9; paper 100)",
    "pixel_tap": "position of the pixel-wise loss: decoder = END, encoder = MIDDLE (Table 3)",
    "pixel_variant": "paper = eq. 4-5 literally (signed channel sum, partial L2; diverges at alpha 100); "
                     "paper-mean = the same with the channel mean (collapses to background at alpha 100); "
                     "paper-normalised = the same on per-image unit-norm maps (the paper recipe's: the nearest "
                     "reading that trains); authors = their code (the authors recipe's)",
    "pair": "beta, weight of the pair-wise loss (eq. 9; paper 1)",
    "pair_tap": "position of the pair-wise loss: encoder = MIDDLE, decoder = END (Table 3)",
    "pair_nodes": "graph nodes of eq. 6-8: channels (as eq. 6 defines) or pixels (3x3 cells, [35] and authors' code)",
    "pair_detach_norm": "detach the node norm of eq. 7 (authors' code: same value, another gradient)",
    "gat": "lambda, weight of attention transfer (eq. 3; paper 1)",
    "gat_tap": "position of attention transfer, or all = the six pre-ReLU taps (authors' code)",
    "gat_form": "code = [37]'s code (channel-mean map, mean square); eq2 = the paper's eq. 2 (an L2 norm); "
                "authors = the authors' column-normalised map",
    "heo": "weight of Heo et al. 2019 as the authors coded it (1 = as coded)",
    "logit_kd": "weight of Hinton soft-label KD (beyond the paper)",
    "kd_temperature": "temperature of logit KD",
    "cwd": "weight of channel-wise distillation, Shu et al. 2021 (beyond the paper)",
    "cwd_tap": "position of channel-wise distillation",
    "cwd_temperature": "temperature of channel-wise distillation",
    "dataset": "voc = Pascal VOC 2012 at --data-root; standin = synthetic stand-in (never VOC results)",
    "data_root": "folder holding VOCdevkit/VOC2012 (or VOCdevkit, or VOC2012); default for standin: embedded one",
    "sbd": "train on SBD-augmented labels (SegmentationClassAug + train_aug.txt); the paper does not",
    "crop": "training crop size",
    "scale_of": "random scale of the image's own size (paper) or of the crop (authors: short side = factor x crop)",
    "scale_min": "random scale, lower end", "scale_max": "random scale, upper end",
    "label_pad": "label value of crop padding: 255 (ignored) or 0 (authors' code)",
    "blur": "Gaussian blur with p = 0.5 (authors' code)",
    "val_size": "validation size",
    "val_mode": "square = resize to size x size (paper); short_side = short side to size (authors' code)",
    "max_train_images": "use only the first N training images", "max_val_images": "use only the first N val images",
    "workers": "data loader worker processes",
    "epochs": "epochs", "batch_size": "images per step per process", "lr": "initial learning rate (backbone)",
    "momentum": "SGD momentum", "weight_decay": "SGD weight decay (BN included, as the reference code)",
    "head_lr_mult": "ASPP/decoder/connector learning rate = this x lr", "poly_power": "poly schedule power",
    "seed": "random seed", "amp": "mixed precision", "amp_dtype": "mixed precision type",
    "channels_last": "channels_last memory format",
    "deterministic": "deterministic algorithms (exact resume on CPU; slower on GPU)",
    "seg_batch_average": "divide the cross-entropy (mean over pixels) by the batch size, as the authors' code does",
    "connector_warmup_epochs": "first epochs of a distilling run train only the connectors (authors' code: 1)",
    "distill_without_aspp_dropout": "distilling runs skip the ASPP's Dropout(0.5), as the authors' feature path does",
    "model_selection": "report the last epoch, or the best validation epoch (authors' trainer; writes best.pt)",
    "eval_every": "evaluate every N epochs (and after the last)", "out": "results folder (one sub-folder per run)",
    "run_name": "run folder name (default <preset>-s<seed>)",
    "device": "auto (cuda when present, else cpu), cpu, cuda or cuda:N",
}


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per Config field; defaults stay None here so that recipe, preset and scale can fill them."""
    add_recipe_option(parser)
    for f in dataclasses.fields(Config):
        if f.name in ("preset", "scale", "recipe"):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str, "bool": bool}[str(f.type).split("|")[0].strip()]
        help_text = f"{HELP[f.name]} (default: {_recipe_defaults(f.name, f.default)})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper(), help=help_text)


def add_recipe_option(parser: argparse.ArgumentParser) -> None:
    """`--recipe authors|paper`, the same words on every command that trains or times."""
    parser.add_argument("--recipe", default=None, choices=list(RECIPES), metavar="RECIPE",
                        help=f"the whole training recipe: authors = what the authors' training code does (CE divided "
                             f"by the batch, a connectors-only first epoch, no ASPP dropout when distilling, the "
                             f"teacher in train mode, their loss readings and transforms, the best epoch); paper = "
                             f"the paper's text read literally (plain CE, eq. 2 and 6 as printed, 513 x 513 "
                             f"validation, the last epoch). Every option below still overrides it. "
                             f"Default: {DEFAULT_RECIPE}")


def scale_help(default: str) -> str:
    """What each scale sets (epochs, crop, batch, images), as `resolve` layers them, and the default."""
    base = Config()
    words = []
    for name, values in SCALES.items():
        v = {**dataclasses.asdict(base), **layered_values(scale=name)}
        longer = ", ".join(f"{preset} {scheduled_epochs(preset, name)}" for preset in values.get("presets", {})
                           if scheduled_epochs(preset, name) != v["epochs"])
        train, val = ("all" if n is None else f"{n:,}" for n in (v["max_train_images"], v["max_val_images"]))
        words.append(f"{name} = {v['epochs']} epochs{f' ({longer})' if longer else ''}, crop {v['crop']}, "
                     f"batch {v['batch_size']}, {train} train and {val} val images")
    return f"how large the runs are, never the method: {'; '.join(words)} (default: {default})"


def add_scale_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--scale", default=default, choices=list(SCALES), metavar="SCALE", help=scale_help(default))


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """`--dataset` and `--data-root`, the same words on every command that reads a dataset."""
    parser.add_argument("--dataset", default="standin", choices=["standin", "voc"], help=HELP["dataset"])
    parser.add_argument("--data-root", default=None, help=HELP["data_root"])


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _recipe_defaults(field: str, default) -> str:
    """'X' or 'authors X, paper Y' for a field the recipes set."""
    values = {name: fields[field] for name, fields in RECIPES.items() if field in fields}
    if not values or len(set(map(str, values.values()))) == 1:
        return str(default)
    return ", ".join(f"{name} {value}" for name, value in values.items())


def _config_from_args(args: argparse.Namespace):
    from paperkd.config import resolve

    skip = ("preset", "scale", "recipe")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if f.name not in skip}
    return resolve(args.preset, args.scale, recipe=args.recipe, **overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from paperkd.train import train

    record = train(_config_from_args(args), resume=args.resume, progress=not args.quiet)
    if record["selected"]:
        chosen = record["selected"]
        print(f"{record['run_name']} ({record['recipe']} recipe): mIoU {chosen['miou']:.4f} at epoch {chosen['epoch']} "
              f"({chosen['rule']}; the last epoch's {record['final']['miou']:.4f}); weights: {chosen['checkpoint']}; "
              f"record: {Path(record['checkpoint']).with_name('record.json')}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from paperkd.inference import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, data_root=args.data_root, split=args.split,
                                  val_size=args.val_size, val_mode=args.val_mode, device=args.device,
                                  max_images=args.max_images, progress=not args.quiet)
    from paperkd.data.palette import VOC_CLASSES

    print(f"mIoU {metrics['miou']:.4f}  pixel accuracy {metrics['pixel_acc']:.4f}")
    for name, iou in zip(VOC_CLASSES, metrics["per_class_iou"]):
        print(f"  {name:<14} {iou:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=1))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from paperkd.inference import predict_images

    written = predict_images(args.checkpoint, args.images, args.out, size=args.size, device=args.device)
    print(f"wrote {len(written)} masks and overlays to {args.out}")
    return 0


def cmd_save_predictions(args: argparse.Namespace) -> int:
    from paperkd.saved_predictions import backfill_plan, save_checkpoint_predictions

    plans = [(run_dir, backfill_plan(run_dir, args.data_root)) for run_dir in args.run_dirs]  # all checked first
    for run_dir, (checkpoint, val_set, count) in plans:
        folder = save_checkpoint_predictions(checkpoint, val_set, run_dir, args.device, count)
        print(f"{run_dir}: predictions of {checkpoint.name} on {count} validation images written to {folder}")
    return 0


def cmd_make_standin(args: argparse.Namespace) -> int:
    from paperkd.data import make_standin

    out = make_standin(args.out, labels_from=args.labels_from, n_train=args.n_train, n_val=args.n_val,
                       size=args.size, seed=args.seed, overwrite=args.overwrite)
    print(f"stand-in written to {out} (synthetic images: never report results on it as VOC results)")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from paperkd.data import check_data
    from paperkd.data.check import format_problems
    from paperkd.saved_predictions import inputs_differ

    problems = check_data(args.root, splits=tuple(args.splits), sbd=args.sbd)
    print(format_problems(problems) if problems else f"{args.root}: no problems found")
    differ = {run_dir: inputs_differ(run_dir, args.root) for run_dir in args.against} if not problems else {}
    for run_dir, names in differ.items():
        print(f"{run_dir}: {len(names)} of its saved inputs differ from this data's: {', '.join(names)}" if names
              else f"{run_dir}: its saved validation inputs and ground truths match this data byte for byte")
    return 1 if problems or any(differ.values()) else 0


def cmd_info(args: argparse.Namespace) -> int:
    from paperkd.models.summary import model_summary

    print(f"input {args.size} x {args.size}, batch 1, device {args.device}; params are trainable parameters")
    header = f"{'model':<13}{'backbone':>12}{'ASPP':>12}{'decoder':>12}{'total':>12}{'GFLOPs':>9}{'latency ms':>12}"
    print(header)
    for backbone in args.backbones:
        s = model_summary(backbone, input_size=args.size, device=args.device, repeats=args.repeats)
        print(f"{backbone:<13}{s['params_backbone']:>12,}{s['params_aspp']:>12,}{s['params_decoder']:>12,}"
              f"{s['params_total']:>12,}{s['gflops']:>9.1f}{s['latency_ms']:>12.1f}")
    return 0


def cmd_campaign(args: argparse.Namespace) -> int:
    from paperkd.campaign import ensure_runs
    from paperkd.config import TABLE_ROWS

    presets = list(dict.fromkeys(args.rows or [p for table in args.tables for p in TABLE_ROWS[table]]))
    settings = dict(scale=args.scale, dataset=args.dataset, data_root=args.data_root, results=args.results,
                    device=args.device, epochs=args.epochs, teacher_epochs=args.teacher_epochs, teacher=args.teacher,
                    workers=args.workers, backbone_weights=args.backbone_weights, pixel_variant=args.pixel_variant,
                    amp=args.amp, recipe=args.recipe)
    if args.dry_run:
        from paperkd.campaign import status

        print(status(presets, args.seeds, exact_rebuild=args.rebuild == "exact", **settings).to_string(index=False))
        return 0
    df = ensure_runs(presets, args.seeds, progress=not args.quiet, exact_rebuild=args.rebuild == "exact", **settings)
    summary = df.groupby("preset", sort=False)["miou"].agg(["mean", "std", "count"])
    print(summary.to_string(float_format=lambda v: f"{100 * v:.2f}"))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from paperkd.calibrate import calibrate, format_calibration

    result = calibrate(args.presets, teacher=args.teacher, recipes=[args.recipe] if args.recipe else list(RECIPES),
                       batches=args.batches, scale=args.scale, dataset=args.dataset, data_root=args.data_root,
                       device=args.device, seed=args.seed, json_path=args.json, progress=not args.quiet)
    print(format_calibration(result))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from paperkd.bench import format_table, run_benchmark

    result = run_benchmark(size=args.size, batch=args.batch, device=args.device, repeats=args.repeats,
                           warmup=args.warmup, methods=args.methods, teacher_dtype=args.teacher_dtype,
                           channels_last=args.channels_last, compile_teacher=args.compile_teacher,
                           inference_mode=args.inference_mode, json_path=args.json, progress=not args.quiet,
                           inference_size=args.inference_size, data_steps=args.data_steps,
                           data_root=args.data_root, teacher_step=not args.no_teacher_step, threads=args.threads,
                           teacher_checkpoint=args.teacher, recipe=args.recipe)
    print(format_table(result))
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    from paperkd.book import build_book

    index = build_book(scale=args.scale, data_root=args.data_root, dataset=args.dataset, results=args.results,
                       device=args.device, seeds=args.seeds, epochs=args.epochs, reuse=not args.no_reuse,
                       notebooks=args.notebooks, build=not args.no_build, recipe=args.recipe)
    print(f"book: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperkd", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a teacher or a student (one row of Tables 1-3)",
                       description="Train one run. Layers, each overriding the last: the defaults, the recipe "
                                   "(--recipe), the preset, the scale, then every option given here. Writes "
                                   "<out>/<run name>/checkpoint.pt (best.pt too when the best epoch is selected) "
                                   "and record.json.")
    p.add_argument("--preset", default="custom", choices=["custom", *PRESETS],
                   help="a row of Tables 1-3: teacher, r18-none|pixel|pair|both, mnv2-..., r18-gat, r18-heo, "
                        "r18-pixel-middle, r18-pair-end")
    add_scale_option(p, "paper")
    p.add_argument("--resume", action="store_true", help="continue from <out>/<run name>/checkpoint.pt")
    add_quiet_option(p)
    _add_config_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="mIoU and per-class IoU of a checkpoint")
    p.add_argument("checkpoint", help="a paperkd checkpoint (checkpoint.pt or best.pt of a run)")
    p.add_argument("--data-root", default=None, help="VOC-layout root (default: the embedded stand-in)")
    p.add_argument("--split", default="val", help="the split to evaluate (ImageSets/Segmentation/<split>.txt)")
    p.add_argument("--val-size", type=int, default=513, help="validation size (paper: 513)")
    p.add_argument("--val-mode", default="square", choices=["square", "short_side"], help=HELP["val_mode"])
    p.add_argument("--max-images", type=int, default=None, help="only the first N images (default: all)")
    p.add_argument("--device", default="auto", help=HELP["device"])
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    add_quiet_option(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="images -> VOC-palette masks and overlays")
    p.add_argument("checkpoint", help="a paperkd checkpoint (checkpoint.pt or best.pt of a run)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=513, help="resize to size x size before the model (paper: 513)")
    p.add_argument("--device", default="auto", help=HELP["device"])
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("save-predictions", help="backfill the saved predictions (Figure 2) of finished runs",
                       description="For each finished run folder (one with record.json), write predictions/: the "
                                   "first validation images, their ground truth and the masks predicted by the "
                                   "weights the record reports (best.pt when the best epoch is selected, else "
                                   "checkpoint.pt), with a manifest of checksums. Runs trained since this command "
                                   "existed save them themselves; it is for older runs whose checkpoints are still "
                                   "here. Every folder is checked before anything is written.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (<results>/<run name>)")
    p.add_argument("--device", default="cpu", help=HELP["device"] + " (default: cpu)")
    p.add_argument("--data-root", default=None,
                   help="folder holding VOCdevkit/VOC2012 (default: the data_root of the run's config; the embedded "
                        "stand-in for a stand-in run without one)")
    p.set_defaults(func=cmd_save_predictions)

    p = sub.add_parser("make-standin", help="write a synthetic stand-in dataset in the VOC layout")
    p.add_argument("out", help="the folder to write (VOCdevkit/VOC2012 inside it); must not exist or be empty")
    p.add_argument("--labels-from", default=None,
                   help="a VOC label folder to take real label maps from (e.g. ../shared/data/voc2012-labels); "
                        "default: procedural labels")
    p.add_argument("--n-train", type=int, default=None,
                   help="train images (default: VOC's 1,464, or every image of the split with --labels-from)")
    p.add_argument("--n-val", type=int, default=None,
                   help="val images (default: VOC's 1,449, or every image of the split with --labels-from)")
    p.add_argument("--size", type=int, default=None, help="short side in pixels (default: native size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic images (the same seed, the same bytes)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p.set_defaults(func=cmd_make_standin)

    p = sub.add_parser("check-data", help="validate a VOC-layout folder and list every problem")
    p.add_argument("root", help="folder holding VOCdevkit/VOC2012 (or VOCdevkit, or VOC2012)")
    p.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to check (default: train val)")
    p.add_argument("--sbd", action="store_true", help="also check the SBD-augmented labels (SegmentationClassAug)")
    p.add_argument("--against", nargs="+", default=[], metavar="RUN_DIR",
                   help="also render the validation images a run saved in RUN_DIR/predictions/ and compare their "
                        "SHA-256s: is this the data that run saw? (e.g. a stand-in made on another machine)")
    p.set_defaults(func=cmd_check_data)

    p = sub.add_parser("info", help="per-part parameter counts, GFLOPs and CPU latency of teacher and students")
    p.add_argument("--backbones", nargs="+", default=["resnet101", "resnet18", "mobilenet_v2"],
                   help="backbones to summarise (default: the teacher's and both students')")
    p.add_argument("--size", type=int, default=513, help="input size x size (paper: 513)")
    p.add_argument("--device", default="cpu", help=HELP["device"] + " (default: cpu)")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes per model (the median is shown)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("campaign", help="train every row of Tables 1-3 x seeds into one folder (resumable)",
                       description="Train the rows of the chosen tables for every seed, teacher first; runs whose "
                                   "record exists are skipped and an interrupted run resumes, so it can be stopped "
                                   "and restarted at any time.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--tables", nargs="+", default=["table1", "table2", "table3"],
                       choices=["table1", "table2", "table3"], help="train the rows of these tables (default: all)")
    which.add_argument("--rows", nargs="+", default=None, choices=list(PRESETS), metavar="PRESET",
                       help="train these rows (presets), in this order, instead of the tables' rows; e.g. the "
                            "students first and the teacher's other seeds last")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of every row (default: 0 1 2, the paper's 3); students of one seed share their "
                        "initialisation and data order, so rows compare in pairs")
    add_scale_option(p, "cpu")
    add_recipe_option(p)
    add_data_options(p)
    p.add_argument("--results", required=True, help="results folder (records are kept, checkpoints too)")
    p.add_argument("--device", default="auto", help=HELP["device"])
    p.add_argument("--epochs", type=int, default=None, help="override the scale's epochs")
    p.add_argument("--teacher-epochs", type=int, default=None,
                   help="override the teacher's epochs alone (the cpu and gpu scales give it more than the students "
                        "already); a teacher whose record exists is not retrained, so use a new --results folder")
    p.add_argument("--teacher", default=None, metavar="CKPT",
                   help="distil every student from this teacher checkpoint (e.g. another campaign's "
                        "teacher-s0/best.pt) instead of training the folder's own teacher")
    p.add_argument("--workers", type=int, default=None, help="data loader worker processes (default: the scale's)")
    p.add_argument("--backbone-weights", default=None,
                   help="ImageNet weights for every backbone, as a short torchvision name resolved per backbone in "
                        "the torch hub cache (IMAGENET1K_V1 or DEFAULT); the paper starts from ImageNet weights")
    p.add_argument("--pixel-variant", default=None, choices=list(PIXEL_VARIANTS),
                   help="reading of the pixel-wise loss for every run (default: the config's, 'authors'); "
                        "keep each reading in its own results folder")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for every run, or --no-amp to switch it off (default: the scale's; on in gpu)")
    p.add_argument("--rebuild", choices=["exact", "any"], default="exact",
                   help="a finished teacher whose weights are missing (checkpoints are not committed) is trained "
                        "again before the students that need it: exact = check each epoch against its record and "
                        "stop at the first that differs (this machine cannot give the old bytes, which its "
                        "students distilled from); any = train it out, a new teacher if the bytes differ "
                        "(default: exact)")
    p.add_argument("--dry-run", action="store_true",
                   help="train nothing: list every planned run and what the campaign would do with it (done, "
                        "diverged, resumes after epoch k, to train)")
    add_quiet_option(p)
    p.set_defaults(func=cmd_campaign)

    p = sub.add_parser("calibrate", help="each weighted distillation term's value and gradient against the CE's",
                       description="For each preset and recipe, on the first training batches with the student at "
                                   "its initialisation: each weighted term's value relative to the cross-entropy, "
                                   "its gradient norm on the student relative to the CE's, and the cosine between "
                                   "the two gradients. Answers 'which weights, really?'.")
    p.add_argument("presets", nargs="*", default=None, metavar="PRESET",
                   help="distilling presets (default: every distinct term of Tables 1-3 on ResNet-18)")
    p.add_argument("--teacher", required=True, help="the trained teacher's checkpoint")
    p.add_argument("--recipe", default=None, choices=list(RECIPES), help="one recipe (default: every recipe)")
    p.add_argument("--batches", type=int, default=4, help="training batches to average over")
    add_scale_option(p, "cpu")
    add_data_options(p)
    p.add_argument("--device", default="cpu", help=HELP["device"] + " (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the student's initialisation and the batches")
    p.add_argument("--json", default=None, help="write the result here (the book's method page reads it)")
    add_quiet_option(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("bench", help="time a training step per method, side by side, and inference",
                       description="Times, in one process and run (warm-up, repeats, median and spread): teacher "
                                   "step, plain student step, teacher forward, and a student step per distillation "
                                   "method, split into parts; ratio to the plain step and overhead over (plain step "
                                   "+ teacher forward). Also inference latency, params and GFLOPs.")
    p.add_argument("--size", type=int, default=513, help="input crop (paper: 513)")
    p.add_argument("--batch", type=int, default=6, help="batch size (paper: 6)")
    add_recipe_option(p)
    p.add_argument("--device", default="auto", help=HELP["device"])
    p.add_argument("--repeats", type=int, default=5, help="timed steps per method (median and spread)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per method before the timed ones")
    p.add_argument("--methods", nargs="+", default=None, metavar="PRESET",
                   help="student presets to time (default: GAT, Heo, pixel, pair, both, both positions)")
    p.add_argument("--teacher-dtype", default=None, choices=["fp32", "bf16", "fp16"],
                   help="autocast dtype of the teacher forward (the student stays fp32)")
    p.add_argument("--channels-last", action="store_true", help="time with the channels_last memory format")
    p.add_argument("--compile-teacher", action="store_true", help="torch.compile the teacher forward")
    p.add_argument("--inference-mode", action=argparse.BooleanOptionalAction, default=True,
                   help="teacher forward under torch.inference_mode")
    p.add_argument("--json", default=None, help="write the result here (the book's performance page reads it)")
    p.add_argument("--inference-size", type=int, default=513, help="inference latency input size (0 = skip)")
    p.add_argument("--data-steps", type=int, default=20, help="data-loader wait measurement steps (0 = skip)")
    p.add_argument("--data-root", default=None, help="dataset for the data-loader measurement (default stand-in)")
    p.add_argument("--no-teacher-step", action="store_true", help="skip the teacher training step")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--teacher", default=None, help="trained teacher checkpoint for the reduced-precision agreement")
    add_quiet_option(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("book", help="execute the notebooks with papermill and build the Jupyter Book")
    add_scale_option(p, "smoke")
    add_recipe_option(p)
    add_data_options(p)
    p.add_argument("--results", default="runs/book", help="run records folder the notebooks read and fill")
    p.add_argument("--device", default="cpu", help=HELP["device"] + " (default: cpu)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds of the build's own runs (default: 0)")
    p.add_argument("--epochs", type=int, default=None, help="override the scale's epochs")
    p.add_argument("--notebooks", nargs="+", default=None, help="only these notebooks (names without .py)")
    p.add_argument("--no-reuse", action="store_true", help="retrain runs whose records exist")
    p.add_argument("--no-build", action="store_true", help="execute notebooks only")
    p.set_defaults(func=cmd_book)
    return parser


def user_message(err: PaperkdError) -> str:
    """The error's own message; one re-raised from a DataLoader worker carries the worker's traceback: drop it."""
    text = str(err)
    if "Original Traceback" in text:
        text = text.rstrip().splitlines()[-1].split(": ", 1)[-1]
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PaperkdError as err:
        print(f"paperkd: error: {user_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paperkd: interrupted", file=sys.stderr)
        return 130
