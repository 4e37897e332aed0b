"""One-time, offline export of a sentence-transformers model to ONNX (fp32 and int8).

Run in a child process by ``memtui.embed.backends.ensure_exported`` (so the run
that needs the export never imports torch itself), or by hand::

    python -m memtui.embed.onnx_export [--model FOLDER] [--out DIR] [--isa avx512_vnni|avx2|arm64]

Without ``--out`` it exports into memtui's model cache exactly as a run would (the checks, the
manifest, the memory need): the way to do the one-time export on a bigger machine or with a
larger limit when a small container refuses it.

Recipe (measured on the bundled sample: BENCHMARKS.md):

1. The transformer (``AutoModel``, eager attention) is traced by
   ``torch.onnx.export`` (TorchScript exporter, opset 17, dynamic batch and
   sequence axes). Eager attention matters: it is the graph ONNX Runtime's
   BERT optimizer recognises.
2. ``onnxruntime.transformers.optimizer`` fuses it (Attention, SkipLayerNorm,
   BiasGelu, EmbedLayerNorm): ``model.onnx``, the fp32 backend.
3. ``quantize_dynamic`` turns the weights of MatMul and Attention into int8,
   **per channel** (per tensor, the cosine to fp32 fell to a mean of 0.95 and
   a 1st percentile of 0.91; per channel 0.995 and 0.99). On x86 without VNNI
   the weights keep 7 bits (``reduce_range``) so AVX2's u8 x s8 products
   cannot saturate. The first layer's FFN output MatMul (``layer.0/output/dense``:
   GELU activations with the widest range, quantized per tensor at run time)
   stays fp32: on 600 sample texts that one exclusion took the top-10
   neighbour overlap from 0.954 to 0.964 and the 1st-percentile cosine from
   0.990 to 0.992 for 1/18 of the weights (a screen of per-layer exclusions:
   BENCHMARKS.md). The result: ``model_int8_<isa>.onnx``.
4. At run time (``memtui.embed.backends.INT8_RUN_TOKENS``) the int8 model gets at most 384 tokens per
   call. Dynamic quantization scales each call's activations as one tensor, so a text's int8 vector
   depends a little on its call's neighbours: the slicing is part of the recipe.

Everything is written into a temporary folder beside ``--out`` and renamed into
place at the end, with its manifest (``memtui.embed.model_cache``): a reader sees
all the files or none. Each step runs in its own process (``_step``): the peak is
the largest step's, not their sum.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from memtui.embed.recipe import RECIPE_VERSION  # the recipe below; its history is there

#: MatMuls left in fp32 by the int8 recipe, matched against the traced graph's node names.
FP32_MATMULS = ("/encoder/layer.0/output/dense/MatMul",)
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_fp32(folder: Path, dest: Path) -> dict:
    """Trace the transformer of ``folder`` to ``dest`` (unoptimised fp32 ONNX); return its config facts."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    model = AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager")
    model.eval()
    cfg = model.config

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(model),
            (ids, ids, torch.zeros_like(ids)),
            str(dest),
            dynamo=False,
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    return {
        "model_type": cfg.model_type,
        "num_heads": int(cfg.num_attention_heads),
        "hidden_size": int(cfg.hidden_size),
    }


def optimize(src: Path, dest: Path, facts: dict) -> dict[str, int]:
    """Fuse the BERT-style graph with ONNX Runtime's transformer optimizer; return the fused-op counts."""
    from onnxruntime.transformers import optimizer

    model_type = "bert" if facts["model_type"] in {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet"} else None
    if model_type is None:
        shutil.copyfile(src, dest)
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = optimizer.optimize_model(
            str(src), model_type=model_type, num_heads=facts["num_heads"], hidden_size=facts["hidden_size"], opt_level=0
        )
    opt.save_model_to_file(str(dest))
    return {k: v for k, v in opt.get_fused_operator_statistics().items() if v}


def fp32_nodes(model_path: Path) -> list[str]:
    """The MatMul nodes the int8 recipe keeps in fp32 (``FP32_MATMULS``), by name in this graph."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith(FP32_MATMULS)]


def quantize(src: Path, dest: Path, isa: str) -> list[str]:
    """Dynamic int8 quantization of the weights, per channel (see the module's docstring); the fp32 nodes."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's "consider pre-processing" chatter
    keep = fp32_nodes(src)
    quantize_dynamic(
        str(src),
        str(dest),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=(isa == "avx2"),
        op_types_to_quantize=["MatMul", "Attention"],
        nodes_to_exclude=keep,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
    )
    return keep


def _step(name: str, *args: str) -> Any:
    """Run one step of the export in its own process and return its JSON answer.

    Each step's memory goes back to the system before the next starts: torch (the trace) is gone by
    the time ONNX Runtime's optimizer loads the graph. Measured peaks (the packaged model, 86.7 MiB of
    weights): trace 0.74 GiB, optimize 0.83 GiB, quantize 0.40 GiB; all three in one process: 1.11 GiB.
    """
    done = subprocess.run(
        [sys.executable, "-m", "memtui.embed.onnx_export", "--step", name, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        if done.returncode < 0:
            raise StepFailed(f"its {name} step was killed by signal {-done.returncode} (out of memory?)")
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise StepFailed(f"its {name} step failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class StepFailed(RuntimeError):
    """One step of the export ended badly; the message says which and why."""


def run_step(name: str, args: list[str]) -> Any:
    """The body of ``--step NAME``: what ``_step`` runs in a child."""
    if name == "trace":
        return export_fp32(Path(args[0]), Path(args[1]))
    if name == "optimize":
        return optimize(Path(args[0]), Path(args[1]), json.loads(args[2]))
    if name == "quantize":
        return quantize(Path(args[0]), Path(args[1]), args[2])
    raise SystemExit(f"unknown step {name!r}")


def export(folder: str | os.PathLike[str], out: str | os.PathLike[str], isa: str) -> dict:
    """Write ``model.onnx`` and ``model_int8_<isa>.onnx`` (plus the manifest ``export.json``) into ``out``.

    All of it goes into a private temporary folder beside ``out`` that is renamed into place once the
    manifest (size and sha256 of each file, ``memtui.embed.model_cache``) is written: a reader sees a
    whole export or none, and a folder without a manifest is never loaded.
    """
    from memtui.embed.model_cache import MANIFEST, manifest_files

    folder, out = Path(folder), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # 0700, a fresh name
    try:
        t0 = time.perf_counter()
        raw = tmp / "raw.onnx"
        facts = _step("trace", str(folder), str(raw))
        t_export = time.perf_counter() - t0
        fused = _step("optimize", str(raw), str(tmp / "model.onnx"), json.dumps(facts))
        raw.unlink()
        t_opt = time.perf_counter() - t0 - t_export
        kept = _step("quantize", str(tmp / "model.onnx"), str(tmp / f"model_int8_{isa}.onnx"), isa)
        for name in os.listdir(tmp):
            os.chmod(tmp / name, 0o600)
        info = {
            "recipe": RECIPE_VERSION,
            "source": str(folder),
            "isa": isa,
            "fused": fused,
            "int8_fp32_nodes": kept,
            **facts,
            "seconds": {
                "export": round(t_export, 2),
                "optimize": round(t_opt, 2),
                "quantize": round(time.perf_counter() - t0 - t_export - t_opt, 2),
            },
            "created_at": time.time(),
            "files": manifest_files(tmp),
        }
        manifest = tmp / MANIFEST
        with open(manifest, "x", encoding="utf-8") as fh:
            fh.write(json.dumps(info, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(manifest, 0o600)
        if os.path.lexists(out):  # another run finished first: keep its files, drop ours
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.rename(tmp, out)
        return info
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memtui.embed.onnx_export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a local sentence-transformers folder (default: the packaged one)")
    ap.add_argument(
        "--out", default=None, help="the folder to create (default: the model's folder in memtui's model cache)"
    )
    ap.add_argument("--isa", default=None, help="avx512_vnni, avx2 or arm64 (default: this machine's)")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)  # one step, in a child of the export
    args, rest = ap.parse_known_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.step:
        print(json.dumps(run_step(args.step, rest)))
        return 0
    from memtui.embed.artifacts import detect_isa
    from memtui.embed.backends import ensure_exported
    from memtui.embed.default_model import packaged_model_path
    from memtui.errors import MemtuiError

    try:
        folder = Path(args.model).expanduser().resolve() if args.model else packaged_model_path()
        if args.out is None:  # what a run would do, with the same checks, into the model cache
            path = ensure_exported(folder, "onnx-int8", log=lambda line: print(line, file=sys.stderr))
            print(json.dumps({"exported": str(path.parent)}))
            return 0
        info = export(folder, args.out, args.isa or detect_isa())
    except MemtuiError as exc:
        print(f"memtui: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except StepFailed as exc:
        print(f"memtui: error: the ONNX export failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
