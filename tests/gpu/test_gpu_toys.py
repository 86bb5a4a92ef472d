"""test_gpu_toys.py — the toy decompositions on a CUDA device against the CPU path
(label gpu). Where `pdc devices` reports no usable GPU it prints why and exits 77,
which CTest counts as skipped.

On a device: short tms-5-2 SPD and APD, resid-mlp-1 VPD, tiny-LM VPD, l3d-tms and CNN runs with --device cuda and
with the CPU must agree closely (the same masks from the same Philox draws; only
summation order differs), and a full tms-5-2 SPD run on the GPU must pass the
slow e2e test's bars: MMCS >= 0.99 and five live subcomponents.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from common import SKIP, Results, TempDir, np, parse_args, run_pdc  # noqa: E402
from test_cuda_cli import ROOT, TMS, decompose, same_run  # noqa: E402


def compare(args, res, tmp, name, model, config, steps, extra=(), factor_rtol=1e-3,
            metric_rtol=2e-3):
    """the same short run on the GPU and the CPU: metrics and factors agree"""
    gpu, cpu = (os.path.join(tmp, name.replace(" ", "_") + d) for d in ("_gpu", "_cpu"))
    pg = decompose(args.pdc, model, gpu, config, steps, "cuda", extra)
    pc = decompose(args.pdc, model, cpu, config, steps, "cpu", extra)
    if res.check(f"{name} {steps} steps on cuda", pg.returncode == 0 and pc.returncode == 0,
                 pg.stderr[-3000:] + pc.stderr[-1000:]):
        same_run(res, f"{name} cuda vs cpu", gpu, cpu, metric_rtol, factor_rtol)


def full_tms(args, res, tmp):
    """the e2e bars of tests/e2e/test_spd_toys.py, trained on the GPU"""
    model, full = os.path.join(tmp, "tms.onnx"), os.path.join(tmp, "full")
    p = run_pdc(args.pdc, ["toy", "tms-5-2", "-o", model, "--seed", "0"])
    cfg = os.path.join(ROOT, "configs", "tms-5-2.yaml")
    if p.returncode == 0:
        p = run_pdc(args.pdc, [model, "-o", full, "--config", cfg, "--device", "cuda"], 1800)
    if p.returncode == 0:
        p = run_pdc(args.pdc, ["eval", full])
    if res.check("tms spd full run on cuda, evaluated", p.returncode == 0, p.stderr[-3000:]):
        w1 = json.load(open(os.path.join(full, "eval.json")))["sites"].get("linear1", {})
        res.check("tms on cuda: MMCS >= 0.99", w1.get("mmcs", 0) >= 0.99, str(w1))
        res.check("tms on cuda: 5 live subcomponents",
                  w1.get("pieces_above_0.1_of_max_norm") == 5, str(w1))


def main():
    args = parse_args(__doc__)
    p = run_pdc(args.pdc, ["devices"])
    if p.returncode != 0:
        print(f"skip: no usable GPU here ({p.stdout.strip()})")
        sys.exit(SKIP)
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        compare(args, res, tmp, "tms spd", TMS, "tms-5-2.yaml", 20)
        full_tms(args, res, tmp)
        resid = os.path.join(tmp, "resid.onnx")
        run_pdc(args.pdc, ["toy", "resid-mlp-1", "-o", resid, "--steps", "200"])
        compare(args, res, tmp, "resid vpd", resid, "resid-mlp-1-vpd.yaml", 10)
        lm, tok = os.path.join(tmp, "lm.onnx"), os.path.join(tmp, "tok.bin")
        run_pdc(args.pdc, ["toy", "tiny-lm", "-o", lm, "--steps", "200", "--seq", "64",
                           "--tokens-out", tok])
        # factors: see test_cuda_cli's note on AdamW's first steps; metrics: the PGD
        # adversary's sign steps amplify summation-order differences (cuda-emu: 5e-4)
        compare(args, res, tmp, "tiny-lm vpd", lm, "tiny-lm-vpd.yaml", 5,
                ["--data", tok, "--seq", "64"], 2e-2, 1e-2)
        l3 = os.path.join(tmp, "l3d.onnx")
        run_pdc(args.pdc, ["toy", "l3d-tms", "-o", l3, "--steps", "2000"])
        compare(args, res, tmp, "l3d tms", l3, "l3d-tms.yaml", 20)
        compare(args, res, tmp, "tms apd", TMS, "tms-5-2-apd.yaml", 20)
        from test_export_decomp import CNN_CFG, cnn_model
        cnn, data, cfg = (os.path.join(tmp, f) for f in ("cnn.onnx", "cnn.npy", "cnn.yaml"))
        cnn_model(cnn)
        np.save(data, np.random.RandomState(2).rand(32, 2, 6, 6).astype(np.float32))
        open(cfg, "w").write(CNN_CFG)
        compare(args, res, tmp, "cnn spd", cnn, cfg, 20, ["--data", data])
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
