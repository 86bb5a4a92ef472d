"""test_spd_toys.py — SPD end to end on the toy targets with known ground truth
(label slow): train the target with `pdc toy`, decompose it with the shipped config,
evaluate, and check the published bars.

  tms-5-2:      MMCS >= 0.99 and ML2R in [0.95, 1.05] for linear1 (SPD paper: 1.000 and
                0.993), exactly 5 subcomponents of non-negligible norm in each matrix (one
                per feature; the rest dead), identity CI error 0 on the one-hot probe.
  resid-mlp-1:  the identity CI pattern on mlp_in (one subcomponent per feature): error 0
                at tol 0.1 (METHOD §7.3, §13.4).

Wall times are printed. Run by CTest as
  .venv/bin/python tests/e2e/test_spd_toys.py --pdc PATH [-k NAME]
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from common import Results, TempDir, parse_args, run_pdc  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TIMEOUT = 3600


def step(res, name, argv, pdc):
    t0 = time.time()
    p = run_pdc(pdc, argv, timeout=TIMEOUT)
    dt = time.time() - t0
    res.check(f"{name} ({dt:.0f} s)", p.returncode == 0, p.stderr[-2000:])
    return p.returncode == 0, dt


def tms_5_2(args, res, tmp):
    model = os.path.join(tmp, "tms-5-2.onnx")
    out = os.path.join(tmp, "tms")
    ok, _ = step(res, "pdc toy tms-5-2", ["toy", "tms-5-2", "-o", model, "--seed", "0"], args.pdc)
    if not ok:
        return
    ok, dt = step(res, "pdc decompose tms-5-2",
                  [model, "-o", out, "--config", os.path.join(ROOT, "configs", "tms-5-2.yaml")],
                  args.pdc)
    if not ok or not step(res, "pdc eval tms-5-2", ["eval", out], args.pdc)[0]:
        return
    ev = json.load(open(os.path.join(out, "eval.json")))
    s = ev["sites"]
    w1 = s.get("linear1", {})
    print(f"tms-5-2: decomposition {dt:.0f} s; linear1 MMCS {w1.get('mmcs')} ML2R {w1.get('ml2r')}; "
          f"pieces {[x.get('pieces_above_0.1_of_max_norm') for x in s.values()]}; "
          f"recon {ev['metrics']}")
    res.check("tms-5-2 MMCS >= 0.99", w1.get("mmcs", 0) >= 0.99, str(w1))
    res.check("tms-5-2 ML2R in [0.95, 1.05]", 0.95 <= w1.get("ml2r", 0) <= 1.05, str(w1))
    for name, site in s.items():
        res.check(f"tms-5-2 {name}: 5 live subcomponents",
                  site["pieces_above_0.1_of_max_norm"] == 5, str(site))
    res.check("tms-5-2 linear1: identity CI error 0", w1.get("identity_ci_error") == 0, str(w1))


def resid_mlp_1(args, res, tmp):
    model = os.path.join(tmp, "resid-mlp-1.onnx")
    out = os.path.join(tmp, "resid")
    ok, _ = step(res, "pdc toy resid-mlp-1", ["toy", "resid-mlp-1", "-o", model, "--seed", "0"],
                 args.pdc)
    if not ok:
        return
    ok, dt = step(res, "pdc decompose resid-mlp-1",
                  [model, "-o", out, "--config", os.path.join(ROOT, "configs", "resid-mlp-1.yaml")]
                  + args.extra, args.pdc)
    if not ok or not step(res, "pdc eval resid-mlp-1", ["eval", out], args.pdc)[0]:
        return
    ev = json.load(open(os.path.join(out, "eval.json")))
    site = ev["sites"].get("layers.0.mlp_in", {})
    print(f"resid-mlp-1: decomposition {dt:.0f} s; mlp_in {site}")
    res.check("resid-mlp-1 mlp_in: identity CI error 0", site.get("identity_ci_error") == 0,
              str(site))


def main():
    args = parse_args(__doc__)
    args.extra = [x for x in os.environ.get("PDC_E2E_RESID_ARGS", "").split() if x]
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        if res.wanted("tms-5-2"):
            tms_5_2(args, res, tmp)
        if res.wanted("resid-mlp-1"):
            resid_mlp_1(args, res, tmp)
    res.finish()


if __name__ == "__main__":
    main()
