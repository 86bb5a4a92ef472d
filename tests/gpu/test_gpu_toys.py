"""test_gpu_toys.py — the toy decompositions on a CUDA device against the CPU path
(label gpu). Where `pdc devices` reports no usable GPU it prints why and exits 77,
which CTest counts as skipped.

On a device: short tms-5-2 SPD, resid-mlp-1 VPD and tiny-LM VPD runs with --device cuda and
with the CPU must agree closely (the same masks from the same Philox draws; only
summation order differs), and a full tms-5-2 SPD run on the GPU must pass the
slow e2e test's bars: MMCS >= 0.99 and five live subcomponents.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from common import SKIP, Results, TempDir, parse_args, run_pdc  # noqa: E402
from test_cuda_cli import ROOT, TMS, decompose, same_run  # noqa: E402


def main():
    args = parse_args(__doc__)
    p = run_pdc(args.pdc, ["devices"])
    if p.returncode != 0:
        print(f"skip: no usable GPU here ({p.stdout.strip()})")
        sys.exit(SKIP)
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        gpu, cpu = os.path.join(tmp, "gpu"), os.path.join(tmp, "cpu")
        pg = decompose(args.pdc, TMS, gpu, "tms-5-2.yaml", 20, "cuda")
        pc = decompose(args.pdc, TMS, cpu, "tms-5-2.yaml", 20, "cpu")
        if res.check("tms spd 20 steps on cuda", pg.returncode == 0 and pc.returncode == 0,
                     pg.stderr[-3000:] + pc.stderr[-1000:]):
            same_run(res, "tms spd 20 steps cuda vs cpu", gpu, cpu, 1e-3)
        # the e2e bars of tests/e2e/test_spd_toys.py, trained on the GPU
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
        resid = os.path.join(tmp, "resid.onnx")
        p = run_pdc(args.pdc, ["toy", "resid-mlp-1", "-o", resid, "--steps", "200"])
        gpu, cpu = os.path.join(tmp, "rgpu"), os.path.join(tmp, "rcpu")
        pg = decompose(args.pdc, resid, gpu, "resid-mlp-1-vpd.yaml", 10, "cuda")
        pc = decompose(args.pdc, resid, cpu, "resid-mlp-1-vpd.yaml", 10, "cpu")
        if res.check("resid vpd on cuda", pg.returncode == 0 and pc.returncode == 0,
                     pg.stderr[-3000:] + pc.stderr[-1000:]):
            same_run(res, "resid vpd cuda vs cpu", gpu, cpu, 1e-3)
        lm, tok = os.path.join(tmp, "lm.onnx"), os.path.join(tmp, "tok.bin")
        p = run_pdc(args.pdc, ["toy", "tiny-lm", "-o", lm, "--steps", "200", "--seq", "64",
                               "--tokens-out", tok])
        gpu, cpu = os.path.join(tmp, "lgpu"), os.path.join(tmp, "lcpu")
        data = ["--data", tok, "--seq", "64"]
        pg = decompose(args.pdc, lm, gpu, "tiny-lm-vpd.yaml", 5, "cuda", data)
        pc = decompose(args.pdc, lm, cpu, "tiny-lm-vpd.yaml", 5, "cpu", data)
        if res.check("tiny-lm vpd on cuda", pg.returncode == 0 and pc.returncode == 0,
                     pg.stderr[-3000:] + pc.stderr[-1000:]):
            same_run(res, "tiny-lm vpd cuda vs cpu", gpu, cpu, 2e-3, 2e-2)  # see test_cuda_cli
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
