"""test_vpd_resid.py — VPD end to end on resid-mlp-1 (label slow): the SPD test's bars
for the same budget (test_spd_toys.py), with configs/resid-mlp-1-vpd.yaml (the SPD
config plus the persistent adversary, coefficient 0.1).

  - mlp_in: every feature has a subcomponent at CI >= 0.9 on the one-hot probe, CI-L0
    near 1 per input, and >= 90 of the 100 features with exactly one subcomponent
    above CI 0.1 (RESID_STEPS = 4000 of the shipped 20 000 steps, as the SPD test);
    with PDC_E2E_VPD_RESID_STEPS=20000 the whole identity pattern (error 0).
  - The fresh-PGD divergence (pdc eval's adversarial table, 20 steps) is printed next
    to the stochastic reconstruction.

Wall times are printed. Run by CTest as
  .venv/bin/python tests/e2e/test_vpd_resid.py --pdc PATH
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from common import Results, TempDir, parse_args, run_pdc  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
STEPS = int(os.environ.get("PDC_E2E_VPD_RESID_STEPS", "4000"))


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        model = os.path.join(tmp, "resid-mlp-1.onnx")
        p = run_pdc(args.pdc, ["toy", "resid-mlp-1", "-o", model, "--seed", "0"], timeout=1800)
        if not res.check("pdc toy resid-mlp-1", p.returncode == 0, p.stderr[-2000:]):
            return res.finish()
        out = os.path.join(tmp, "vpd-resid")
        t0 = time.time()
        p = run_pdc(args.pdc, [model, "-o", out, "--config",
                               os.path.join(ROOT, "configs", "resid-mlp-1-vpd.yaml"),
                               "--steps", str(STEPS)], timeout=6 * 3600)
        dt = time.time() - t0
        if not res.check(f"vpd resid-mlp-1 decomposition ({dt:.0f} s)", p.returncode == 0,
                         p.stderr[-2000:]):
            return res.finish()
        p = run_pdc(args.pdc, ["eval", out], timeout=1800)
        if not res.check("vpd resid-mlp-1 eval", p.returncode == 0, p.stderr[-2000:]):
            return res.finish()
        import numpy as np  # noqa: E402  (the venv has it)
        ev = json.load(open(os.path.join(out, "eval.json")))
        site = ev["sites"].get("layers.0.mlp_in", {})
        ci = np.load(os.path.join(out, "probe_ci.npz"))["layers.0.mlp_in"]  # [features, C]
        one = int(np.sum((ci > 0.1).sum(axis=1) == 1))
        full = int(np.sum(ci.max(axis=1) >= 0.9))
        brief = {k: v for k, v in site.items() if k != "firing_density"}
        print(f"vpd resid-mlp-1 after {STEPS} steps ({dt:.0f} s): {one}/100 one-to-one, "
              f"{full}/100 covered; mlp_in {brief}; PGD-20 MSE "
              f"{ev['adversarial']['steps'].get('20')}, stochastic MSE "
              f"{ev['metrics'].get('recon/stochastic')}")
        res.check("vpd resid-mlp-1 mlp_in: L0 near 1 per input", 0.5 <= site.get("L0", 0) <= 1.5,
                  str(site))
        res.check("vpd resid-mlp-1 mlp_in: every feature has an important subcomponent",
                  full == 100, f"{full}/100")
        if STEPS >= 20000:
            res.check("vpd resid-mlp-1 mlp_in: identity CI error 0",
                      site.get("identity_ci_error") == 0, str(site))
        else:
            res.check("vpd resid-mlp-1 mlp_in: >= 90 features with exactly one subcomponent",
                      one >= 90, f"{one}/100")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
