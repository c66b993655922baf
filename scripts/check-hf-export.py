#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks a Mamba export of mmlab against Hugging Face transformers.

Given the export directory (model.safetensors + config.json, written by `core/io/hf_mamba.cpp`)
and a reference file (a .safetensors holding "input_ids" (I64, [B, L]) and "logits" (F32,
[B, L, V]) that mmlab computed with its own model), this script

1. reads model.safetensors with Python's `safetensors` (the reference reader of the format),
   checks every tensor name and shape against config.json,
2. loads the directory with `transformers.MambaForCausalLM.from_pretrained` on the CPU in float32,
   on the slow reference path (no mamba_ssm / causal_conv1d kernels), and checks that the model's
   weights are bit-for-bit the tensors in the file (nothing missing, dropped or renamed),
3. runs the reference token ids (use_cache=False) and prints the max abs difference of the logits.

Exit status: 0 when everything matches and the difference is at most --tolerance (1e-3), 1 when a
check fails, 2 for a bad command line. See docs/export.md.
"""

import argparse
import json
import math
import os
import sys

# Everything stays local: no download of hub kernels or configs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REQUIRED_CONFIG = {
    "model_type": str,
    "vocab_size": int,
    "hidden_size": int,
    "state_size": int,
    "num_hidden_layers": int,
    "conv_kernel": int,
    "expand": int,
    "intermediate_size": int,
    "time_step_rank": int,
    "use_bias": bool,
    "use_conv_bias": bool,
    "layer_norm_epsilon": float,
    "tie_word_embeddings": bool,
    "residual_in_fp32": bool,
    "hidden_act": str,
}


class CheckFailed(Exception):
    pass


def expected_shapes(cfg):
    """The tensors MambaForCausalLM has for `cfg`, name -> shape (lm_head.weight included)."""
    d, di, n, r = cfg["hidden_size"], cfg["intermediate_size"], cfg["state_size"], cfg["time_step_rank"]
    shapes = {"backbone.embeddings.weight": (cfg["vocab_size"], d)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"backbone.layers.{i}."
        shapes[p + "norm.weight"] = (d,)
        shapes[p + "mixer.in_proj.weight"] = (2 * di, d)
        shapes[p + "mixer.conv1d.weight"] = (di, 1, cfg["conv_kernel"])
        shapes[p + "mixer.x_proj.weight"] = (r + 2 * n, di)
        shapes[p + "mixer.dt_proj.weight"] = (di, r)
        shapes[p + "mixer.dt_proj.bias"] = (di,)
        shapes[p + "mixer.A_log"] = (di, n)
        shapes[p + "mixer.D"] = (di,)
        shapes[p + "mixer.out_proj.weight"] = (d, di)
        if cfg["use_conv_bias"]:
            shapes[p + "mixer.conv1d.bias"] = (di,)
        if cfg["use_bias"]:
            shapes[p + "mixer.in_proj.bias"] = (2 * di,)
            shapes[p + "mixer.out_proj.bias"] = (d,)
    shapes["backbone.norm_f.weight"] = (d,)
    shapes["lm_head.weight"] = (cfg["vocab_size"], d)
    return shapes


def check_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"{path} cannot be read as JSON: {e}")
    for key, kind in REQUIRED_CONFIG.items():
        if key not in cfg:
            raise CheckFailed(f"{path} lacks the key {key!r} (see docs/export.md).")
        value = cfg[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise CheckFailed(f"{path}: {key!r} is {value!r}, expected a {kind.__name__}.")
    if cfg["model_type"] != "mamba":
        raise CheckFailed(f"{path}: model_type is {cfg['model_type']!r}, expected 'mamba'.")
    if cfg["hidden_act"] != "silu":
        raise CheckFailed(f"{path}: hidden_act is {cfg['hidden_act']!r}, expected 'silu'.")
    if cfg["intermediate_size"] != cfg["expand"] * cfg["hidden_size"]:
        # MambaConfig recomputes intermediate_size as expand * hidden_size; a different value in
        # the file would be silently ignored or override it, depending on the version.
        raise CheckFailed(f"{path}: intermediate_size must equal expand * hidden_size.")
    return cfg


def check_file_tensors(model_file, cfg):
    """Reads the file with Python's safetensors; returns name -> tensor."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        tensors = load_file(model_file)
        with safe_open(model_file, framework="pt") as f:
            metadata = f.metadata()
    except Exception as e:  # the reader's own errors have no common base class
        raise CheckFailed(f"Python's safetensors cannot read {model_file}: {e}")
    # Several transformers versions refuse a file whose metadata lacks format=pt (some crash on
    # a file with no metadata at all), so our exporter must always write it.
    if not metadata or metadata.get("format") != "pt":
        raise CheckFailed(f"{model_file}: metadata {metadata!r} lacks \"format\": \"pt\".")
    want = expected_shapes(cfg)
    if cfg["tie_word_embeddings"] and "lm_head.weight" not in tensors:
        del want["lm_head.weight"]  # a tied head may be left out; transformers ties it on load
    missing = sorted(set(want) - set(tensors))
    extra = sorted(set(tensors) - set(want))
    if missing or extra:
        raise CheckFailed(f"{model_file}: missing tensors {missing[:8]}, unexpected tensors {extra[:8]}.")
    for name, shape in want.items():
        if tuple(tensors[name].shape) != shape:
            raise CheckFailed(f"{model_file}: {name} has shape {tuple(tensors[name].shape)}, expected {shape}.")
    if cfg["tie_word_embeddings"] and "lm_head.weight" in tensors:
        if not _bit_equal(tensors["lm_head.weight"], tensors["backbone.embeddings.weight"]):
            raise CheckFailed(f"{model_file}: tie_word_embeddings is true but lm_head.weight differs from the embeddings.")
    print(f"safetensors: read {len(tensors)} tensors, metadata keys {sorted(metadata)}")
    return tensors


def _bit_equal(a, b):
    import torch

    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = a.contiguous(), b.contiguous()
    return torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8)) if a.numel() else True


def force_reference_path(model):
    """Puts every MambaMixer on the plain-PyTorch reference path, even where the mamba_ssm /
    causal_conv1d packages or hub kernels are installed: the export must match the reference
    arithmetic, not a kernel's. Returns the number of mixers.

    transformers 4.x has a `slow_forward` method beside the kernel path; 5.x routes each op
    through a decorator that prefers hub kernels, then the original package, then the torch
    function, which the decorator keeps as `__wrapped__`."""
    from transformers.models.mamba import modeling_mamba

    for name in ("causal_conv1d_fn", "causal_conv1d_update", "mamba_inner_fn",
                 "mamba_selective_state_update", "mamba_selective_scan"):
        torch_version = getattr(getattr(modeling_mamba, name, None), "__wrapped__", None)
        if torch_version is not None:
            setattr(modeling_mamba, name, torch_version)
    mixers = [m for m in model.modules() if isinstance(m, modeling_mamba.MambaMixer)]
    for m in mixers:
        if hasattr(m, "slow_forward"):
            m.forward = m.slow_forward
        # The sequential loop is the reference; mamba.py's pscan and torch's associative_scan
        # are other summation orders.
        for flag in ("use_mambapy", "use_associative_scan"):
            if hasattr(m, flag):
                setattr(m, flag, False)
    return len(mixers)


def load_model(export_dir, file_tensors, cfg):
    import torch
    from transformers import MambaForCausalLM

    try:
        model, info = MambaForCausalLM.from_pretrained(export_dir, output_loading_info=True)
    except Exception as e:
        raise CheckFailed(f"transformers cannot load {export_dir}: {type(e).__name__}: {e}")
    model = model.to(device="cpu", dtype=torch.float32).eval()
    missing = [k for k in info.get("missing_keys", []) if not (k == "lm_head.weight" and cfg["tie_word_embeddings"])]
    problems = {
        "missing": missing,
        "unexpected": list(info.get("unexpected_keys", [])),
        "mismatched": list(info.get("mismatched_keys", [])),
    }
    if any(problems.values()):
        raise CheckFailed(f"transformers reports weights that did not load: {problems}")
    n_mixers = force_reference_path(model)
    if n_mixers != cfg["num_hidden_layers"]:
        raise CheckFailed(f"the model has {n_mixers} Mamba mixers, config.json says {cfg['num_hidden_layers']}.")
    # The weights transformers holds must be exactly the file's (upcast only if the file was not
    # float32): catches a tensor that loaded under another name, transposed or re-initialised.
    state = model.state_dict()
    for name, t in file_tensors.items():
        if name not in state:
            raise CheckFailed(f"the loaded model has no weight {name}.")
        if not _bit_equal(state[name], t.to(torch.float32)):
            raise CheckFailed(f"the loaded model's {name} differs from the file's.")
    return model


def compare_logits(model, reference_file, tolerance):
    import torch
    from safetensors.torch import load_file

    try:
        ref = load_file(reference_file)
    except Exception as e:
        raise CheckFailed(f"Python's safetensors cannot read {reference_file}: {e}")
    for key in ("input_ids", "logits"):
        if key not in ref:
            raise CheckFailed(f"{reference_file} has no tensor {key!r} (it needs input_ids and logits).")
    ids = ref["input_ids"].to(torch.long)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    expected = ref["logits"].to(torch.float32).reshape(ids.shape[0], ids.shape[1], -1)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits.to(torch.float32)
    if logits.shape != expected.shape:
        raise CheckFailed(f"logits have shape {tuple(logits.shape)}, the reference {tuple(expected.shape)}.")
    diff = (logits - expected).abs()
    max_diff = diff.max().item() if diff.numel() else 0.0
    print(f"logits: shape {tuple(logits.shape)}, max abs difference {max_diff:.3e} "
          f"(mean {diff.mean().item() if diff.numel() else 0.0:.3e}, tolerance {tolerance:g})")
    if not math.isfinite(max_diff) or max_diff > tolerance:
        raise CheckFailed(f"max abs difference of the logits {max_diff:.3e} exceeds {tolerance:g}.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir", help="directory with model.safetensors and config.json")
    parser.add_argument("reference", help=".safetensors with input_ids [B, L] and logits [B, L, V]")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="max abs logit difference (default 1e-3)")
    args = parser.parse_args(argv)

    import safetensors
    import torch
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, safetensors {safetensors.__version__}")
    torch.manual_seed(0)
    try:
        cfg = check_config(os.path.join(args.export_dir, "config.json"))
        tensors = check_file_tensors(os.path.join(args.export_dir, "model.safetensors"), cfg)
        model = load_model(args.export_dir, tensors, cfg)
        compare_logits(model, args.reference, args.tolerance)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("OK: transformers' MambaForCausalLM reproduces the exported model.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
