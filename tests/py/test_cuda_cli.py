"""test_cuda_cli.py — `--device`, and the CUDA target's logic through its HOST
EMULATION (no GPU is used here; tests/gpu/ holds the runs on a real device).

- `pdc devices` says whether a GPU is usable, and why not;
- where none is, `--device cuda` stops before writing anything, with the reason, and
  `--device auto` is exactly the CPU run;
- `--device cuda-emu` trains the SPD, VPD, APD and L3D toy programs (TMS, residual
  MLP, the tiny LM, l3d-tms, two small CNNs) through the GPU target's
  lowering (cu_lower.c), its kernels' per-element code run block by block on the
  host, its fused kernels as the emulated PTX, its GEMMs as the cuBLAS calls it
  issues and its Philox: the run must match the CPU run's losses and factors, and
  under PDC_CHECK=ref every unit of every step must match the reference target's.
"""
import os
import sys

from common import Results, TempDir, parse_args, run_pdc, np
from lm_oracle import read_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TMS = os.path.join(ROOT, "models", "tms-5-2.onnx")
CONFIGS = os.path.join(ROOT, "configs")


def last_metrics(folder):
    import json
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    return {k: v for k, v in lines[-1].items() if k not in ("steps_per_s", "phase")}


def decompose(pdc, model, out, config, steps, device=None, extra=(), env=None):
    """config: a file in configs/, or a path"""
    argv = [model, "-o", out, "--config", os.path.join(CONFIGS, config), "--steps", str(steps),
            "--force"] + list(extra)
    if device:
        argv += ["--device", device]
    if env:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
    try:
        return run_pdc(pdc, argv, timeout=900)
    finally:
        if env:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def pool_model(path):
    """x [batch, 2, 6, 6] → Conv 3×3 pad 1 → Relu → MaxPool 2×2 → AveragePool 3×3 pad 1
    (count_include_pad) → GlobalAveragePool → Flatten → Gemm → y [batch, 3]: every
    pooling op and its gradient in one program"""
    import onnx
    from onnx import TensorProto, helper
    import common
    r = np.random.RandomState(7)
    inits = [common.init("conv1", (r.randn(4, 2, 3, 3) * 0.4).astype(np.float32)),
             common.init("fc", (r.randn(3, 4) * 0.3).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "conv1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["m1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["m1"], ["a1"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], count_include_pad=1),
             helper.make_node("GlobalAveragePool", ["a1"], ["g1"]),
             helper.make_node("Flatten", ["g1"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "pool",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
                          inits)
    onnx.save(common.make_model(g, opset=13), path)


def same_run(res, name, a, b, rtol, factor_rtol=None):
    """two decomposition folders: final metrics within rtol, every factor within
    factor_rtol (default rtol) of its tensor's largest magnitude"""
    factor_rtol = factor_rtol or rtol
    ma, mb = last_metrics(a), last_metrics(b)
    worst = max(abs(ma[k] - mb[k]) / max(abs(mb[k]), 1e-6) for k in mb)
    res.check(f"{name}: metrics", set(ma) == set(mb) and worst <= rtol,
              f"metrics differ (worst relative {worst:.3g}): {ma} vs {mb}", f"worst {worst:.2g}")
    fa = read_safetensors(os.path.join(a, "components.safetensors"))
    fb = read_safetensors(os.path.join(b, "components.safetensors"))
    errs = [float(np.max(np.abs(fa[k] - fb[k])) / max(float(np.max(np.abs(fb[k]))), 1e-6))
            for k in fb if k in fa]
    res.check(f"{name}: factors", set(fa) == set(fb) and max(errs) <= factor_rtol,
              f"factors differ: worst relative {max(errs):.3g}", f"worst {max(errs):.2g}")


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    pdc = args.pdc
    with TempDir(args.keep) as tmp:
        p = run_pdc(pdc, ["devices"])
        usable = p.returncode == 0
        res.check("devices", p.returncode in (0, 1) and "cuda:" in p.stdout and "cpu:" in p.stdout,
                  f"rc {p.returncode}: {p.stdout} {p.stderr}", p.stdout.strip().replace("\n", "; "))

        if res.wanted("no-gpu") and not usable:
            out = os.path.join(tmp, "refused")
            p = decompose(pdc, TMS, out, "tms-5-2.yaml", 5, "cuda")
            res.check("no-gpu: --device cuda refused", p.returncode == 1 and
                      "--device cuda: " in p.stderr and not os.path.exists(out),
                      f"rc {p.returncode}, exists {os.path.exists(out)}: {p.stderr.strip()}",
                      p.stderr.strip())
        p = decompose(pdc, TMS, os.path.join(tmp, "bogus"), "tms-5-2.yaml", 5, "tpu")
        res.check("unknown device", p.returncode == 1 and "--device 'tpu'" in p.stderr,
                  f"rc {p.returncode}: {p.stderr.strip()}")

        cpu = os.path.join(tmp, "cpu")
        p = decompose(pdc, TMS, cpu, "tms-5-2.yaml", 30)
        if not res.check("tms cpu run", p.returncode == 0, p.stderr[-2000:]):
            res.finish()
        if res.wanted("auto") and not usable:
            auto = os.path.join(tmp, "auto")
            p = decompose(pdc, TMS, auto, "tms-5-2.yaml", 30, "auto")
            same = p.returncode == 0 and all(
                open(os.path.join(auto, f), "rb").read() == open(os.path.join(cpu, f), "rb").read()
                for f in ("components.safetensors",))
            res.check("auto without a GPU is the CPU run", same, p.stderr[-2000:])

        # a device runs ahead of the loss check: it must still stop at the right step
        msgs = []
        for dev in ("cpu", "cuda-emu"):
            p = decompose(pdc, TMS, os.path.join(tmp, "nan-" + dev), "tms-5-2.yaml", 50, dev,
                          ["--lr", "1e30"], {"PDC_CHECK": ""})  # (ref's infinities differ)
            msgs.append(p.stderr.strip().split("the loss became")[-1] if p.returncode else "")
        res.check("non-finite loss: same step on cuda-emu as on cpu",
                  msgs[0] and msgs[0] == msgs[1], str(msgs), msgs[0])

        # the emulated GPU target against the CPU, each unit checked against ref
        # (name, model, config, steps, options, the CPU run's folder, factor tolerance)
        runs = [("tms spd", TMS, "tms-5-2.yaml", 30, [], cpu, 2e-3)]
        if res.wanted("vpd"):
            vcpu = os.path.join(tmp, "vcpu")
            p = decompose(pdc, TMS, vcpu, "tms-5-2-vpd.yaml", 10)
            res.check("tms vpd cpu run", p.returncode == 0, p.stderr[-2000:])
            runs.append(("tms vpd", TMS, "tms-5-2-vpd.yaml", 10, [], vcpu, 2e-3))
            resid = os.path.join(tmp, "resid.onnx")
            p = run_pdc(pdc, ["toy", "resid-mlp-1", "-o", resid, "--steps", "30"])
            res.check("resid-mlp-1 toy", p.returncode == 0, p.stderr[-2000:])
            rcpu = os.path.join(tmp, "rcpu")
            extra = ["--batch", "64"]
            p = decompose(pdc, resid, rcpu, "resid-mlp-1-vpd.yaml", 3, None, extra)
            res.check("resid vpd cpu run", p.returncode == 0, p.stderr[-2000:])
            runs.append(("resid vpd", resid, "resid-mlp-1-vpd.yaml", 3, extra, rcpu, 2e-3))
        if res.wanted("apd"):  # the batch top-k
            acpu = os.path.join(tmp, "acpu")
            p = decompose(pdc, TMS, acpu, "tms-5-2-apd.yaml", 5)
            res.check("tms apd cpu run", p.returncode == 0, p.stderr[-2000:])
            runs.append(("tms apd", TMS, "tms-5-2-apd.yaml", 5, [], acpu, 2e-3))
        if res.wanted("l3d"):  # Einsum, Floor
            l3 = os.path.join(tmp, "l3d.onnx")
            p = run_pdc(pdc, ["toy", "l3d-tms", "-o", l3, "--steps", "100"])
            res.check("l3d-tms toy", p.returncode == 0, p.stderr[-2000:])
            lcpu = os.path.join(tmp, "l3cpu")
            p = decompose(pdc, l3, lcpu, "l3d-tms.yaml", 5)
            res.check("l3d cpu run", p.returncode == 0, p.stderr[-2000:])
            runs.append(("l3d tms", l3, "l3d-tms.yaml", 5, [], lcpu, 2e-3))
        if res.wanted("cnn"):  # Conv and its two gradients
            try:
                from test_export_decomp import CNN_CFG, cnn_model
            except ImportError:
                cnn_model = None
                print("(no onnx in this python: the CNN run is left out)")
            if cnn_model:
                cnn, data, cfg = (os.path.join(tmp, f) for f in ("cnn.onnx", "cnn.npy", "cnn.yaml"))
                cnn_model(cnn)
                np.save(data, np.random.RandomState(2).rand(32, 2, 6, 6).astype(np.float32))
                open(cfg, "w").write(CNN_CFG)
                ccpu = os.path.join(tmp, "ccpu")
                p = decompose(pdc, cnn, ccpu, cfg, 6, None, ["--data", data])
                res.check("cnn spd cpu run", p.returncode == 0, p.stderr[-2000:])
                runs.append(("cnn spd", cnn, cfg, 6, ["--data", data], ccpu, 2e-3))
                pool = os.path.join(tmp, "pool.onnx")
                pool_model(pool)
                pcpu = os.path.join(tmp, "pcpu")
                p = decompose(pdc, pool, pcpu, cfg, 6, None, ["--data", data])
                res.check("pooling cnn spd cpu run", p.returncode == 0, p.stderr[-2000:])
                runs.append(("pooling cnn spd", pool, cfg, 6, ["--data", data], pcpu, 2e-3))
        if res.wanted("lm"):  # attention, LayerNorm, embeddings, the chunked KL
            lm, tok = os.path.join(tmp, "lm.onnx"), os.path.join(tmp, "tok.bin")
            p = run_pdc(pdc, ["toy", "tiny-lm", "-o", lm, "--steps", "5", "--seq", "16",
                              "--tokens-out", tok])
            res.check("tiny-lm toy", p.returncode == 0, p.stderr[-2000:])
            lcpu = os.path.join(tmp, "lcpu")
            extra = ["--data", tok, "--seq", "16"]
            p = decompose(pdc, lm, lcpu, "tiny-lm-vpd.yaml", 2, None, extra)
            res.check("tiny-lm vpd cpu run", p.returncode == 0, p.stderr[-2000:])
            # AdamW's first steps move every weight by about lr whatever the size of
            # its gradient, so a near-zero gradient summed in another order can flip
            # an update's sign: up to 2·lr (2e-4) on factors of size ~0.1
            runs.append(("tiny-lm vpd", lm, "tiny-lm-vpd.yaml", 2, extra, lcpu, 1e-2))
        # every program the emulated runs build, also as the GPU's PTX module (once: not again
        # in the `check` rerun of this script)
        # (and neither these nor the unit checks in an ASan build, which looks for
        # memory errors: the release build's run does the oracle work)
        sanitized = bool(os.environ.get("PDC_TEST_SANITIZED"))
        ptx_dir = None if os.environ.get("PDC_CHECK") or sanitized else os.path.join(tmp, "ptx")
        env = {"PDC_CHECK": "" if sanitized else "ref"}
        if ptx_dir:
            os.makedirs(ptx_dir)
            env["PDC_PTX_DIR"] = ptx_dir
        for name, model, config, steps, extra, ref_dir, ftol in runs:
            if not res.wanted(name):
                continue
            emu = os.path.join(tmp, name.replace(" ", "_") + "_emu")
            p = decompose(pdc, model, emu, config, steps, "cuda-emu", extra, env)
            checked = "" if sanitized else ", every unit checked against ref"
            if res.check(f"{name} on cuda-emu{checked}", p.returncode == 0,
                         p.stderr[-3000:]):
                same_run(res, f"{name} cuda-emu vs cpu", emu, ref_dir, 2e-3, ftol)
        if ptx_dir:
            assemble_all(res, ptx_dir)
    res.finish()


def assemble_all(res, ptx_dir):
    """ptxas on every kernel PDC_PTX_DIR collected (sm_80 and sm_90)"""
    import concurrent.futures
    import subprocess
    ptxas = os.environ.get("PDC_PTXAS") or "/usr/local/cuda/bin/ptxas"
    files = sorted(os.listdir(ptx_dir))
    if not files:  # -k left out every emulated run
        return
    if not os.access(ptxas, os.X_OK):
        print(f"(no ptxas at {ptxas}: the {len(files)} PTX files are not assembled)")
        return

    def one(f):
        sm = f.rsplit("-sm", 1)[1].split(".")[0]
        r = subprocess.run([ptxas, f"-arch=sm_{sm}", "-o", os.devnull, os.path.join(ptx_dir, f)],
                           capture_output=True, text=True)
        return f, r.returncode, r.stderr

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        bad = [(f, err) for f, rc, err in ex.map(one, files) if rc != 0]
    archs = {f.rsplit("-sm", 1)[1] for f in files}
    res.check("every program's GPU module (all its kernels) assembles with ptxas",
              not bad and archs == {"80.ptx", "90.ptx"},
              f"{len(bad)} of {len(files)} failed: {bad[:2]}",
              f"{len(files) // 2} distinct modules, sm_80 and sm_90")


if __name__ == "__main__":
    sys.exit(main())
