#!/usr/bin/env bash
# The GPU check: run from an unpacked bundle on a GPU node (or from a checkout), it measures pipelines/gpu_check.yaml
# (GPT-2 medium, T5 base, BERT base; device and dtype auto; lengths up to 4096 where positions allow) and prints a
# verdict for each claim e3pipe makes about CUDA. Under 8 minutes on one GPU.
#
#   E3PIPE_LIBTORCH=/path/to/site-packages/torch scripts/gpu_check.sh      # on the GPU node
#   scripts/gpu_check.sh --cpu-smoke                                       # here: small models, short lengths
#
# --cpu-smoke runs the same steps with the quick models at short lengths, so the script itself is tested on a
# machine without a GPU; every CUDA claim then says SKIP. Exit 0 when nothing FAILs, 1 otherwise.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
smoke=0
[ "${1:-}" = "--cpu-smoke" ] && smoke=1
# E3PIPE_BIN: the binary to check (`make gpu-check TORCH=2.11` passes its build's).
if [ -n "${E3PIPE_BIN:-}" ]; then e3pipe="$E3PIPE_BIN"
elif [ -x "$here/bin/e3pipe" ]; then e3pipe="$here/bin/e3pipe"; else e3pipe="$here/target/debug/e3pipe"; fi
[ -x "$e3pipe" ] || { echo "error: no e3pipe binary in \`$here/bin\` or \`$here/target/debug\`" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 is needed to read the results" >&2; exit 2; }

work="$here/gpu-check-$(date +%Y%m%d_%H%M%S)"
mkdir -p "$work/configs/model" "$work/configs/bench" "$work/pipelines"
cp "$here/pipelines/gpu_check.yaml" "$work/pipelines/"
cp "$here"/configs/model/{gpt2-medium,t5-base,bert-base,bert-base-readback,t5-base-busy}.yaml "$work/configs/model/"
cp "$here"/configs/bench/gpu_check_*.yaml "$work/configs/bench/"
if [ "$smoke" = 1 ]; then
  # The quick models' shapes under the check's model names, at lengths a CPU measures in seconds.
  for f in gpt2-medium t5-base bert-base bert-base-readback t5-base-busy; do
    sed -i -e 's/n_embd: 1024/n_embd: 64/; s/n_layer: 24/n_layer: 2/; s/n_head: 16/n_head: 2/' \
      -e 's/d_model: 768/d_model: 64/; s/d_kv: 64/d_kv: 16/; s/d_ff: 3072/d_ff: 128/; s/num_layers: 12/num_layers: 2/; s/num_heads: 12/num_heads: 4/' \
      -e 's/hidden_size: 768/hidden_size: 64/; s/num_hidden_layers: 12/num_hidden_layers: 2/; s/num_attention_heads: 12/num_attention_heads: 2/; s/intermediate_size: 3072/intermediate_size: 128/' \
      "$work/configs/model/$f.yaml"
  done
  sed -i -e 's/context_lengths: .*/context_lengths: [32, 64]/' -e 's/num_tokens: 16/num_tokens: 4/' \
    -e 's/min_duration_s: 8/min_duration_s: 1/' -e 's/batch_sizes: .*/batch_sizes: [1, 4]/' "$work"/configs/bench/gpu_check_*.yaml
  sed -i -e 's/context_lengths: .*/context_lengths: [64]/' -e 's/batch_sizes: .*/batch_sizes: [4]/' \
    "$work/configs/bench/gpu_check_encoder_readback.yaml"
  sed -i 's/context_lengths: .*/context_lengths: [128]/' "$work/configs/bench/gpu_check_busy.yaml"
fi

echo "gpu_check: $("$e3pipe" --version), work dir $work"
start=$(date +%s)
# What the bench steps will run on, as the points will record it (and the GPU the samplers below watch).
"$e3pipe" identify --format json > "$work/identify.json"
"$e3pipe" identify || true
uuid=$(python3 -c 'import json,sys; g=json.load(open(sys.argv[1])).get("gpu") or {}; print(g.get("uuid", ""))' "$work/identify.json" 2>/dev/null)
power="$work/gpu_power_idle.csv"
if command -v nvidia-smi >/dev/null && [ "$smoke" = 0 ] && [ -n "$uuid" ]; then
  # The measured GPU's idle power and its board limit, for the energy check's plausible range.
  nvidia-smi -i "$uuid" --query-gpu=power.draw,power.limit --format=csv,noheader,nounits > "$power" 2>/dev/null
fi
"$e3pipe" run "$work/pipelines/gpu_check.yaml" --only bench-gpt2,bench-t5,bench-bert,bench-bert-readback,aggregate,plot
rc=$?
# The busy step in a run of its own, sampled: it ends right after its measured runs (no aggregate or plot after it),
# so the last seconds of samples are the measured runs.
util="$work/gpu_utilisation.csv"
sampler=""
if command -v nvidia-smi >/dev/null && [ "$smoke" = 0 ] && [ "${uuid#GPU-}" != "$uuid" ]; then
  # The measured GPU's utilisation every 200 ms, with a timestamp (by UUID: idle neighbours on the node must not
  # count; a MIG slice has no utilisation of its own, and the check says SKIP).
  nvidia-smi -i "$uuid" --query-gpu=timestamp,utilization.gpu --format=csv,noheader,nounits -lms 200 > "$util" 2>/dev/null &
  sampler=$!
fi
"$e3pipe" run "$work/pipelines/gpu_check.yaml" --only bench-t5-busy
busy_rc=$?
[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
[ "$busy_rc" -ne 0 ] && rc=$busy_rc
echo "gpu_check: e3pipe exited $rc after $(( $(date +%s) - start )) s"

python3 - "$work" "$smoke" "$util" "$power" <<'PY'
import csv, datetime, glob, json, os, statistics, sys
work, smoke, util, power = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
docs = {}       # model -> length -> point at the smallest batch
batched = {}    # (model, batch) -> length -> point
for f in glob.glob(os.path.join(work, "latest", "inference", "*.json")):
    d = json.load(open(f))
    pts = {}
    for length, m in d.get("metrics", {}).items():
        if "point" in m:
            pts[int(length)] = m["point"]
            batched.setdefault((d["model"], m["point"].get("batch_size", 1)), {})[int(length)] = m["point"]
    for batch, by_length in d.get("batch_metrics", {}).items():
        for length, m in by_length.items():
            if "point" in m:
                batched.setdefault((d["model"], int(batch)), {})[int(length)] = m["point"]
    docs[d["model"]] = pts
verdicts = []
def say(claim, verdict, detail):
    verdicts.append(verdict)
    print(f"{verdict:5} {claim}: {detail}")
every = [p for pts in batched.values() for p in pts.values()]
ok = [p for p in every if p.get("status") == "ok"]
bad = [(p["model"], p["context_length"], p.get("batch_size"), p["status"], p.get("reason")) for p in every if p.get("status") not in ("ok", "infeasible")]
say("every point measured", "PASS" if ok and not bad else "FAIL", f"{len(ok)} ok" + (f"; not: {bad}" if bad else ""))
fed = [p for p in ok if p.get("input_tokens") != p.get("context_length")]
say("a point labelled L tokens fed L tokens", "PASS" if ok and not fed else "FAIL", f"{len(ok) - len(fed)} of {len(ok)}")
devices = sorted({p["device"] for p in ok})
gpu = all(d.startswith("cuda:") and "(" in d for d in devices) and bool(devices)
if smoke:
    say("device is a GPU, named", "SKIP", f"--cpu-smoke ({', '.join(devices)})")
    say("dtype auto -> fp16", "SKIP", f"--cpu-smoke ({', '.join(sorted({p['dtype'] for p in ok}))})")
else:
    say("device is a GPU, named", "PASS" if gpu else "FAIL", ", ".join(devices))
    dt = sorted({p["dtype"] for p in ok})
    say("dtype auto -> fp16", "PASS" if dt == ["fp16"] else "FAIL", ", ".join(dt))
# Synchronisation: the same BERT with its output copied to the host before the clock stops, at the largest batch both
# measured (64 × 512 tokens on a GPU: tens of milliseconds of work, which a clock read at launch would miss).
common = sorted({b for m, b in batched if m == "bert-base"} & {b for m, b in batched if m == "bert-base-readback"})
sync_batch = common[-1] if common else 1
plain, back = batched.get(("bert-base", sync_batch), {}), batched.get(("bert-base-readback", sync_batch), {})
ratios = []
for length in sorted(set(plain) & set(back)):
    a = plain[length]["stats"].get("forward_pass_latency_ms", {}).get("median")
    b = back[length]["stats"].get("forward_pass_latency_ms", {}).get("median")
    if a and b:
        ratios.append((length, b / a))
detail = ", ".join(f"{l} tokens × batch {sync_batch}: x{r:.3f}" for l, r in ratios) or "no pairs"
if not ratios:
    say("clock read after the device finished", "FAIL", detail)
elif smoke:
    say("clock read after the device finished", "SKIP", f"--cpu-smoke (CPU has no queue; read-back / plain {detail})")
else:
    # A clock read before the GPU finished would make the plain times a fraction of the read-back ones.
    say("clock read after the device finished", "PASS" if all(0.85 <= r <= 1.25 for _, r in ratios) else "FAIL",
        f"read-back / plain median {detail}")
# The CUDA caching allocator's peak, growing with length.
if smoke:
    say("allocator peak read, growing with length", "SKIP", "--cpu-smoke (memory_source " + ", ".join(sorted({p['memory_source'] for p in ok})) + ")")
else:
    grows = []
    for model, pts in docs.items():
        peaks = [(l, pts[l].get("cuda_peak_bytes")) for l in sorted(pts) if pts[l].get("status") == "ok"]
        src = {pts[l].get("memory_source") for l in pts}
        good = all(b for _, b in peaks) and src == {"cuda_allocator"} and all(peaks[i][1] <= peaks[i + 1][1] for i in range(len(peaks) - 1))
        grows.append((model, good, [b for _, b in peaks]))
    say("allocator peak read, growing with length", "PASS" if grows and all(g for _, g, _ in grows) else "FAIL",
        "; ".join(f"{m}: {b}" for m, _, b in grows))
sources = sorted({p.get("energy_source", "") for p in ok})
if smoke:
    say("energy", "SKIP", f"--cpu-smoke ({', '.join(sources)})")
else:
    # Plausible only over a window of many counter updates (NVML's advances about every 100 ms): the busy T5 point
    # (>= 8 s of measured runs); its average power must lie between the GPU's idle draw and its board limit.
    busy = docs.get("t5-base-busy", {}).get(4096, {})
    e = busy.get("energy") or {}
    try:
        idle_w, limit_w = [float(x) for x in open(power).read().split(",")[:2]]
    except (OSError, ValueError):
        idle_w, limit_w = None, None
    window_s = busy.get("stats", {}).get("e2e_latency_ms", {}).get("median", 0) * busy.get("stats", {}).get("e2e_latency_ms", {}).get("n", 0) / 1e3
    if not e:
        say("energy", "INFO", ", ".join(sources) + " (no energy on the busy point: none is claimed)")
    elif idle_w is None:
        say("energy", "FAIL", f"{e.get('avg_power_w')} W, but the GPU's idle draw and limit could not be read")
    else:
        plausible = idle_w < e["avg_power_w"] <= limit_w * 1.05 and window_s >= 1.0
        say("energy", "PASS" if plausible else "FAIL",
            f"{e['avg_power_w']:.0f} W average over {window_s:.1f} s of T5 at 4096 tokens (idle {idle_w:.0f} W, limit {limit_w:.0f} W)")
# Host work in the timed region: a T5 at 4096 tokens dominated by host time would leave the GPU idle.
if smoke or not os.path.exists(util):
    say("timed region not dominated by host work", "SKIP", "--cpu-smoke" if smoke else "nvidia-smi not found")
else:
    busy = docs.get("t5-base-busy", {}).get(4096, {})
    seconds = busy.get("wall_s", 0)
    rows = []
    for r in csv.reader(open(util)):
        try:
            rows.append((datetime.datetime.strptime(r[0].strip(), "%Y/%m/%d %H:%M:%S.%f"), float(r[1])))
        except (ValueError, IndexError):
            pass
    # The busy step ran alone and last: its measured runs (warm-ups included, `wall_s`) end at the last samples;
    # a second is left out at each end for start-up and exit.
    if rows and seconds > 2:
        end = rows[-1][0]
        window = [u for t, u in rows if 1 <= (end - t).total_seconds() <= seconds - 1]
        med = statistics.median(window) if window else 0
        say("timed region not dominated by host work", "PASS" if med >= 70 else "FAIL",
            f"GPU utilisation median {med:.0f} % over {len(window)} samples while T5 ran at 4096 tokens")
    else:
        say("timed region not dominated by host work", "FAIL", "no utilisation samples or no busy point")
libs = sorted({p.get("libtorch_version", "") for p in ok})
say("libtorch of the points", "INFO", ", ".join(libs))
if smoke:
    say("each point says what measured it", "SKIP", "--cpu-smoke (no GPU identity)")
else:
    missing = [(p["model"], p["context_length"]) for p in ok
               if not (p.get("hardware", {}).get("driver") and (p.get("runtime") or {}).get("cuda_runtime"))]
    r = (ok[0].get("runtime") or {}) if ok else {}
    say("each point says what measured it", "PASS" if ok and not missing else "FAIL",
        f"driver {ok[0].get('hardware', {}).get('driver') if ok else '?'}, CUDA runtime {r.get('cuda_runtime')}, cuDNN {r.get('cudnn')}"
        + (f"; missing on {missing}" if missing else ""))
    states = [p.get("gpu_state") for p in ok if p.get("gpu_state")]
    clocks = sorted({s["end"].get("sm_clock_mhz") for s in states if s["end"].get("sm_clock_mhz")})
    warned = sorted({w for p in ok for w in p.get("warnings", [])})
    say("GPU state around each window", "INFO" if states else "FAIL",
        f"{len(states)} of {len(ok)} points; SM clocks at window end {clocks[:1]}..{clocks[-1:]} MHz; warnings: {warned or 'none'}")
sys.exit(1 if "FAIL" in verdicts else 0)
PY
status=$?
[ "$rc" -ne 0 ] && status=1
echo "gpu_check: $([ $status = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - start )) s; results in $work"
exit $status
