"""test_vpd_toys.py — VPD end to end on tms-5-2 (label slow), and whether the
adversary matters.

Both runs use the same target, seed and budget (batch 2048, 8000 steps: the
demo's budget, 40 % of the shipped schedule's examples, which already recovers
the ground truth): SPD with configs/tms-5-2.yaml and VPD with configs/tms-5-2-vpd.yaml
(the same objective plus the persistent adversary of METHOD §4.7).

  - VPD reaches the SPD bars: MMCS >= 0.99 and ML2R in [0.95, 1.05] for linear1,
    5 live subcomponents in each matrix, identity CI error 0.
  - The adversary matters, measured: the divergence after 20 steps of a fresh
    shared-source PGD adversary (pdc eval's adversarial table) is lower for the
    VPD decomposition than for the SPD one.

resid-mlp-1 is test_vpd_resid.py (a long run of its own, so CTest runs the two side by
side).

Wall times are printed. Run by CTest as
  .venv/bin/python tests/e2e/test_vpd_toys.py --pdc PATH
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from common import Results, TempDir, parse_args, run_pdc  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "models", "tms-5-2.onnx")
BUDGET = ["--batch", "2048", "--steps", "8000"]


def decompose(args, res, tmp, name, config):
    out = os.path.join(tmp, name)
    t0 = time.time()
    p = run_pdc(args.pdc, [MODEL, "-o", out, "--config", os.path.join(ROOT, "configs", config),
                           *BUDGET], timeout=3600)
    dt = time.time() - t0
    if not res.check(f"{name} decomposition ({dt:.0f} s)", p.returncode == 0, p.stderr[-2000:]):
        return None
    t0 = time.time()
    p = run_pdc(args.pdc, ["eval", out], timeout=1800)
    if not res.check(f"{name} eval ({time.time() - t0:.0f} s)", p.returncode == 0,
                     p.stderr[-2000:]):
        return None
    ev = json.load(open(os.path.join(out, "eval.json")))
    print(f"{name}: {dt:.0f} s; sites {json.dumps(ev['sites'])}; adversarial "
          f"{json.dumps(ev['adversarial']['steps'])}; recon {json.dumps(ev['metrics'])}")
    return ev


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        vpd = decompose(args, res, tmp, "vpd", "tms-5-2-vpd.yaml")
        spd = decompose(args, res, tmp, "spd", "tms-5-2.yaml")
        if vpd:
            w1 = vpd["sites"].get("linear1", {})
            res.check("vpd tms-5-2 MMCS >= 0.99", w1.get("mmcs", 0) >= 0.99, str(w1))
            res.check("vpd tms-5-2 ML2R in [0.95, 1.05]", 0.95 <= w1.get("ml2r", 0) <= 1.05,
                      str(w1))
            for name, site in vpd["sites"].items():
                res.check(f"vpd tms-5-2 {name}: 5 live subcomponents",
                          site["pieces_above_0.1_of_max_norm"] == 5, str(site))
            res.check("vpd tms-5-2 linear1: identity CI error 0",
                      w1.get("identity_ci_error") == 0, str(w1))
        if vpd and spd:
            a, b = vpd["adversarial"]["steps"]["20"], spd["adversarial"]["steps"]["20"]
            print(f"PGD-20 divergence: VPD {a:.4g}, SPD {b:.4g} (ratio {b / max(a, 1e-30):.2f})")
            res.check("the adversary matters: PGD-20 lower after VPD than after SPD", a < b,
                      f"VPD {a}, SPD {b}")
    res.finish()


if __name__ == "__main__":
    main()
