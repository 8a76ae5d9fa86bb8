#!/usr/bin/env python3
"""Check e3pipe's model against transformers on your own checkpoint, from a results file measured with
`record_outputs: true` in its bench config.

For every point that recorded outputs, the same prompt ids (`outputs.input_ids`, the first row) go through
transformers' implementation of the checkpoint in fp32 on the CPU:
  generators  generate(do_sample=False, min_new_tokens = max_new_tokens = N): EOS never chosen, as e3pipe measures;
              the N ids must equal `outputs.generated_ids`
  encoders    the last hidden state's first 8 values at position 0 must be within --tol of `outputs.hidden_head`
Points measured in another dtype than fp32 are compared all the same (their tolerance is yours to choose).

  python3 scripts/check_outputs.py latest/inference/MODEL.json path/to/hf-dir [--tol 1e-4]

Exit 0 when every recorded point agrees, 1 when one does not, 2 when there is nothing to check.
Needs torch and transformers (`make reference-env`).
"""
import argparse
import json
import sys

import torch
import transformers


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", help="a results document (latest/inference/<model>.json)")
    ap.add_argument("model_dir", help="the Hugging Face directory the points were measured from")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    doc = json.load(open(args.results))
    arch = doc.get("config", {}).get("model", {}).get("arch")
    if arch == "encoder":
        model = transformers.AutoModel.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
    elif arch == "decoder":
        model = transformers.AutoModelForCausalLM.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
    else:
        model = transformers.AutoModelForSeq2SeqLM.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
    checked, failed = 0, 0
    for length, metrics in sorted(doc.get("metrics", {}).items(), key=lambda kv: int(kv[0])):
        outputs = metrics.get("point", {}).get("outputs")
        if not outputs:
            continue
        ids = torch.tensor([outputs["input_ids"]], dtype=torch.long)
        if "generated_ids" in outputs:
            want = outputs["generated_ids"]
            n = len(want)
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                                 min_new_tokens=n, max_new_tokens=n)
            got = out[0, -n:].tolist()
            ok = got == want
            print(f"{length:>6} tokens: generated {'equal' if ok else 'DIFFER'} ({n} ids){'' if ok else f': e3pipe {want}, transformers {got}'}")
        else:
            want = torch.tensor(outputs["hidden_head"])
            got = model(input_ids=ids).last_hidden_state[0, 0, : len(want)].double()
            diff = (got - want).abs().max().item()
            ok = diff <= args.tol
            print(f"{length:>6} tokens: hidden head max |diff| {diff:.2e} ({'within' if ok else 'OVER'} {args.tol})")
        checked += 1
        failed += not ok
    if checked == 0:
        print("no point recorded outputs: set `record_outputs: true` in the bench config and run again")
        return 2
    print(f"{checked - failed} of {checked} points agree with transformers {transformers.__version__}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
