"""test_tiny_lm.py — SPD end to end on the tiny language model (label slow): train
the target briefly with `pdc toy tiny-lm`, decompose its attention and MLP matrices
with configs/tiny-lm.yaml (KL output loss) for a few hundred steps on windows of its
token file, run `pdc eval`, and check the LM table (METHOD §7.5):

  table     printed, and eval.json's "lm" holds kl, ce, ce_difference and
            ce_unrecovered for every mask kind (target, unmasked, stochastic with
            and without Δ, rounded at 0 / 0.1 / 0.5, CI, zero)
  oracle    onnxruntime, on the same held-out windows pdc eval reads: CE_target from
            the target model; KL and CE of the unmasked row from the model with every
            decomposed W replaced by V·U (masks 1, no Δ); of the zero row with W = 0
  sanity    KL_unmasked small after the faithfulness warmup, |CE_unmasked − CE_target|
            small, CE_zero well above CE_target, the target beats the unigram
            baseline; consistency: ce_difference = CE − CE_target, ce_unrecovered of
            the target 0 and of the zero masks 1, every row = ce_difference /
            (CE_zero − CE_target)

Then VPD on the same model (configs/tiny-lm-vpd.yaml, a few hundred steps): both eval
tables, the LM one and the adversarial one (KL under fresh PGD), present and sane.

Wall times of every step are printed. Run by CTest as
  .venv/bin/python tests/e2e/test_tiny_lm.py --pdc PATH
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
import common  # noqa: E402
from common import Results, TempDir, np, parse_args, run_pdc  # noqa: E402

common.need_onnx()
import lm_oracle  # noqa: E402
from lm_oracle import ROWS, SEQ  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TOY_STEPS = os.environ.get("PDC_E2E_LM_TOY_STEPS", "500")
SPD_STEPS = os.environ.get("PDC_E2E_LM_STEPS", "300")
VPD_STEPS = os.environ.get("PDC_E2E_LM_VPD_STEPS", "200")


def step(res, name, argv, pdc):
    t0 = time.time()
    p = run_pdc(pdc, argv, timeout=1800)
    dt = time.time() - t0
    res.check(f"{name} ({dt:.0f} s)", p.returncode == 0, common.describe_failure(p))
    return p, dt


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(args.keep, "pdc_e2e_lm_") as tmp:
        model = os.path.join(tmp, "lm.onnx")
        tokens_path = os.path.join(tmp, "tokens.bin")
        out = os.path.join(tmp, "decomp")
        p, t_toy = step(res, "pdc toy tiny-lm", ["toy", "tiny-lm", "-o", model, "--seed", "0",
                                                 "--steps", TOY_STEPS, "--tokens-out",
                                                 tokens_path], args.pdc)
        if p.returncode != 0:
            res.finish()
        print(p.stdout.strip())
        m = re.search(r"held-out\s+model ([0-9.]+) bits/byte, unigram ([0-9.]+)", p.stdout)
        res.check("the target beats the unigram baseline on held-out bytes",
                  m is not None and float(m.group(1)) < float(m.group(2)), p.stdout)
        p, t_dec = step(res, "pdc decompose (spd)", [
            model, "-o", out, "--method", "spd", "--config",
            os.path.join(ROOT, "configs", "tiny-lm.yaml"), "--steps", SPD_STEPS,
            "--data", tokens_path, "--seq", str(SEQ)], args.pdc)
        if p.returncode != 0:
            res.finish()
        p, t_ev = step(res, "pdc eval", ["eval", out], args.pdc)
        if p.returncode != 0:
            res.finish()
        print(p.stdout[:2000])
        ev = json.load(open(os.path.join(out, "eval.json")))
        lm = ev.get("lm", {})
        print(f"wall: toy {t_toy:.0f} s ({TOY_STEPS} steps), decomposition {t_dec:.0f} s "
              f"({SPD_STEPS} steps + warmup), eval {t_ev:.0f} s")
        if lm_oracle.check_table(res, p.stdout, lm):
            rows = lm["masks"]
            lm_oracle.check_consistency(res, rows)
            res.check("KL_unmasked small after the faithfulness warmup",
                      rows["unmasked"]["kl"] < 1e-3, str(rows["unmasked"]))
            res.check("|CE_unmasked - CE_target| small (V·U vs W only)",
                      abs(rows["unmasked"]["ce_difference"]) < 0.01, str(rows["unmasked"]))
            res.check("CE_zero well above CE_target",
                      rows["zero"]["ce"] > rows["target"]["ce"] + 0.5, str(rows["zero"]))
            res.check("flat metrics: kl/* and ce/* in eval.json",
                      all(f"kl/{r}" in ev["metrics"] and f"ce/{r}" in ev["metrics"]
                          for r in ROWS[1:]) and "ce/target" in ev["metrics"],
                      str(list(ev["metrics"])[:40]))
            tokens = np.fromfile(tokens_path, dtype="<u2")
            batch = json.load(open(os.path.join(out, "decomposition.json")))["config"]["batch_size"]
            lm_oracle.check_oracle(res, model, out, tokens, rows, batch)
        vpd(args, res, tmp, model, tokens_path)
    res.finish()


def vpd(args, res, tmp, model, tokens_path):
    """VPD on the same LM (configs/tiny-lm-vpd.yaml: the persistent adversary, the global
    CI transformer): both eval tables, the adversary's KL rising over its steps."""
    out = os.path.join(tmp, "vpd")
    p, t_dec = step(res, "pdc decompose (vpd)", [
        model, "-o", out, "--config", os.path.join(ROOT, "configs", "tiny-lm-vpd.yaml"),
        "--steps", VPD_STEPS, "--warmup-steps", "100", "--data", tokens_path,
        "--seq", str(SEQ)], args.pdc)
    if p.returncode != 0:
        return
    p, t_ev = step(res, "pdc eval (vpd)", ["eval", out], args.pdc)
    if p.returncode != 0:
        return
    ev = json.load(open(os.path.join(out, "eval.json")))
    adv = ev.get("adversarial", {}).get("steps", {})
    print(p.stdout[:3000])
    print(f"vpd wall: decomposition {t_dec:.0f} s ({VPD_STEPS} steps + warmup), eval {t_ev:.0f} s")
    lm_oracle.check_table(res, p.stdout, ev.get("lm", {}))
    res.check("vpd eval: the adversarial table in KL", ev.get("adversarial", {}).get(
        "divergence") == "kl" and sorted(adv, key=int) == ["0", "20", "40", "80", "160", "320"],
        json.dumps(ev.get("adversarial")))
    if adv:
        res.check("vpd eval: 20 PGD steps raise the KL over the random source",
                  adv["20"] > adv["0"], json.dumps(adv))
        res.check("vpd eval: more steps never lower the reported KL much",
                  adv["320"] >= 0.9 * adv["20"], json.dumps(adv))


if __name__ == "__main__":
    main()
