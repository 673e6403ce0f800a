#!/usr/bin/env python3
"""bench-vs-llama.py - our CPU engine side by side with llama.cpp on the same GGUF files.

    make bench LLAMA_BIN=/tmp/llama-build/bin [BENCH_ROUNDS=3] [BENCH_THREADS=2]
    tools/bench-vs-llama.py --llama-bin DIR [--bin bin] [--dir build/bench-vs-llama]
                            [--rounds 3] [--threads 2] [--reps 1] [--types F16,Q8_0,Q4_0,Q4_K_M]
                            [--nice 10] [--json OUT.json]

LLAMA_BIN is a llama.cpp CPU build you made yourself (llama-bench, llama-batched-bench,
llama-quantize); the project never downloads or builds llama.cpp. The files: the project's
random 1B model written by `inferno-model random --preset 1b --type f16`, and Q8_0 / Q4_0 /
Q4_K_M made from it by llama-quantize (cached in --dir), so both engines read the same bytes.

Every measurement is a child process (under nice, with --threads threads), so each engine's
peak RSS comes from wait4(). Rounds alternate the engines on each file (the order flips every
round); a table cell is the median over rounds, and the ratio is the median of the per-round
ratios ours / llama.cpp, which cancels most of the drift of a shared, noisy machine.

Tests (llama-bench's definitions): pp128 = one 128-token batch from an empty cache; tg32 = 32
single-token steps from position 0; batched 8x(32+64) = 8 sequences of 32 prompt + 64 generated
tokens (llama-batched-bench -npl 8 -npp 32 -ntg 64; ours: 8 requests through the engine),
reported as generated tokens over the whole run, prompts included.

Floors (inferno-bench --floors, best over rounds): a step over n tokens takes at least
max(weight bytes / read bandwidth, 2 * multiply-adds * n / peak), with the F32 FMA peak for
F32/F16/BF16 files and the int8 dot peak for quantized ones; "% of floor" = tok/s / floor tok/s.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

TYPES = ["F16", "Q8_0", "Q4_0", "Q4_K_M"]
FLOAT_TYPES = {"F32", "F16", "BF16"}
NPL, NPP, NTG = 8, 32, 64
PP, TG = 128, 32


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_child(cmd, nice):
    """Runs cmd; returns (rc, stdout, stderr, peak RSS KiB, wall s)."""
    full = (["nice", "-n", str(nice)] if nice else []) + cmd
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(full, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)  # nice execs cmd: same pid, its rusage
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return (p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                ru.ru_maxrss, wall)


def check(rc, what, err):
    if rc != 0:
        log(f"bench-vs-llama: {what} failed (exit {rc}):\n{err[-3000:]}")
        sys.exit(1)


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in output")


def make_files(a):
    os.makedirs(a.dir, exist_ok=True)
    paths = {}
    f16 = os.path.join(a.dir, "1b-F16.gguf")
    if not os.path.exists(f16):
        log(f"bench-vs-llama: writing {f16} (inferno-model random --preset 1b --type f16) ...")
        rc, _, err, _, _ = run_child([os.path.join(a.bin, "inferno-model"), "random", f16 + ".tmp",
                                      "--preset", "1b", "--type", "f16"], a.nice)
        check(rc, "inferno-model random", err)
        os.rename(f16 + ".tmp", f16)
    for t in a.types:
        p = os.path.join(a.dir, f"1b-{t}.gguf")
        if t != "F16" and not os.path.exists(p):
            log(f"bench-vs-llama: writing {p} (llama-quantize {t}) ...")
            rc, _, err, _, _ = run_child([os.path.join(a.llama_bin, "llama-quantize"), f16, p + ".tmp", t,
                                          str(a.threads)], a.nice)
            check(rc, f"llama-quantize {t}", err)
            os.rename(p + ".tmp", p)
        paths[t] = p
    return paths


def ours_single(a, path):
    rc, out, err, rss, _ = run_child([os.path.join(a.bin, "inferno-bench"), "--file", path, "--threads",
                                      str(a.threads), "--reps", str(a.reps), "--pp", str(PP), "--tg", str(TG)],
                                     a.nice)
    check(rc, f"inferno-bench --file {path}", err)
    j = last_json(out)
    return {"pp": j["pp_tps"], "tg": j["tg_tps"], "load_s": j["load_s"], "rss_kb": rss, "info": j}


def ours_batched(a, path):
    rc, out, err, rss, _ = run_child([os.path.join(a.bin, "inferno-bench"), "--file", path, "--threads",
                                      str(a.threads), "--batched", f"{NPL},{NPP},{NTG}"], a.nice)
    check(rc, f"inferno-bench --file {path} --batched", err)
    j = last_json(out)
    return {"batched": j["gen_tps"], "load_s": j["load_s"], "rss_kb": rss, "info": j}


def llama_single(a, path):
    rc, out, err, rss, _ = run_child([os.path.join(a.llama_bin, "llama-bench"), "-m", path, "-t", str(a.threads),
                                      "-p", str(PP), "-n", str(TG), "-r", str(a.reps), "-o", "json"], a.nice)
    check(rc, f"llama-bench {path}", err)
    rows = json.loads(out[out.index("["):])
    r = {"rss_kb": rss}
    for row in rows:
        if row.get("n_prompt") == PP and row.get("n_gen") == 0:
            r["pp"] = row["avg_ts"]
        elif row.get("n_gen") == TG and row.get("n_prompt") == 0:
            r["tg"] = row["avg_ts"]
    r["info"] = rows[0] if rows else {}
    return r


def llama_batched(a, path):
    ctx = NPL * (NPP + NTG) + 256
    rc, out, err, rss, _ = run_child([os.path.join(a.llama_bin, "llama-batched-bench"), "-m", path,
                                      "-t", str(a.threads), "-tb", str(a.threads), "-c", str(ctx),
                                      "-npp", str(NPP), "-ntg", str(NTG), "-npl", str(NPL),
                                      "--output-format", "jsonl"], a.nice)
    check(rc, f"llama-batched-bench {path}", err)
    j = None
    for line in (out + "\n" + err).splitlines():
        line = line.strip()
        if line.startswith("{") and '"speed_tg"' in line:
            j = json.loads(line)
    if j is None:
        log(f"bench-vs-llama: no result line from llama-batched-bench:\n{out[-2000:]}{err[-2000:]}")
        sys.exit(1)
    m = re.search(r"load time\s*=\s*([0-9.]+)\s*ms", err + out)
    return {"batched": j["pl"] * j["tg"] / j["t"], "load_s": float(m.group(1)) / 1000 if m else None,
            "rss_kb": rss, "info": j}


def floors(a):
    rc, out, err, _, _ = run_child([os.path.join(a.bin, "inferno-bench"), "--floors", "--threads", str(a.threads)],
                                   a.nice)
    check(rc, "inferno-bench --floors", err)
    return last_json(out)


def floor_tps(test, fl, bytes_tok, macs_tok, float_type):
    bw = fl["bw_gbps"] * 1e9
    peak = (fl["f32_gflops"] if float_type else fl["int8_gops"]) * 1e9

    def step(n):
        return max(bytes_tok / bw, 2.0 * macs_tok * n / peak) if peak > 0 else bytes_tok / bw

    if test == "tg":
        return 1.0 / step(1)
    if test == "pp":
        return PP / step(PP)
    return NPL * NTG / (step(NPL * NPP) + NTG * step(NPL))


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def render(a, raw, fls, paths):
    """Prints the tables from the raw per-round figures."""
    rounds_n = min(len(v) for v in raw.values())
    fl = {"bw_gbps": max(f["bw_gbps"] for f in fls), "f32_gflops": max(f["f32_gflops"] for f in fls),
          "int8_gops": max(f["int8_gops"] for f in fls), "f32_isa": fls[0]["f32_isa"],
          "int8_isa": fls[0]["int8_isa"]}
    device = raw[a.types[0]][0]["ours"]["batched_info"].get("device", "?")
    lb = raw[a.types[0]][0]["llama"]["single"]
    print(f"# inferno vs llama.cpp, {a.threads} threads, {rounds_n} rounds\n")
    desc = a.llama_desc or f"{lb.get('build_commit', '?')} (build {lb.get('build_number', '?')})"
    print(f"ours: {device}; llama.cpp: {desc}, "
          f"{lb.get('cpu_info', '?')}, backends {lb.get('backends', '?')}")
    print(f"floors (best of {rounds_n} rounds, {a.threads} threads): read bandwidth {fl['bw_gbps']:.1f} GB/s; "
          f"F32 FMA peak {fl['f32_gflops']:.0f} GFLOP/s ({fl['f32_isa']}); int8 dot peak {fl['int8_gops']:.0f} GOP/s "
          f"({fl['int8_isa']})\n")
    print("| file | type | threads | test | ours tok/s | llama.cpp tok/s | ratio | ours % of floor "
          "| llama.cpp % of floor | floor tok/s | best ours / best llama.cpp |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    tests = [("tg", f"tg{TG}"), ("pp", f"pp{PP}"), ("batched", f"batched {NPL}x({NPP}+{NTG})")]
    for t in a.types:
        rounds = raw[t]
        info = rounds[0]["ours"]["single"]
        ft = floor_tps
        for key, name in tests:
            ov = [x["ours"][key] for x in rounds]
            lv = [x["llama"][key] for x in rounds]
            ratios = [o / l for o, l in zip(ov, lv) if o and l]
            f = ft(key, fl, info["weight_bytes_per_token"], info["macs_per_token"], info["weight_type"] in FLOAT_TYPES)
            mo, ml = med(ov), med(lv)
            print(f"| 1b-{t}.gguf | {info['weight_type']} | {a.threads} | {name} | {fmt(mo)} | {fmt(ml)} "
                  f"| {fmt(med(ratios))} | {fmt(mo and 100 * mo / f, 0)}% | {fmt(ml and 100 * ml / f, 0)}% "
                  f"| {fmt(f)} | {fmt(max(ov) / max(lv) if ov and lv and max(lv) else None)} |")
    print("\n| file | file MB | ours load s | llama.cpp load s | ours peak RSS MB (tg/pp, batched) "
          "| llama.cpp peak RSS MB (tg/pp, batched) |")
    print("|---|---:|---:|---:|---:|---:|")
    for t in a.types:
        rounds = raw[t]
        mb = os.path.getsize(paths[t]) / 1e6

        def rss(who, k):
            return med([x[who][k] for x in rounds]) / 1024

        print(f"| 1b-{t}.gguf | {mb:.0f} | {fmt(med([x['ours']['load_s'] for x in rounds]))} "
              f"| {fmt(med([x['llama']['load_s'] for x in rounds]))} "
              f"| {rss('ours', 'rss_kb'):.0f}, {rss('ours', 'rss_batched_kb'):.0f} "
              f"| {rss('llama', 'rss_kb'):.0f}, {rss('llama', 'rss_batched_kb'):.0f} |")
    la = [x["loadavg"] for v in raw.values() for x in v if "loadavg" in x]
    if la:
        print(f"\n1-minute load average after each pair: {min(la):.1f} to {max(la):.1f} on {os.cpu_count()} CPUs "
              "(above the thread count, other processes shared the cores and the figures are noisy).")
    print("\nours load: gguf_open + backend creation in the tg/pp child; llama.cpp load: llama-batched-bench's "
          "`load time` (llama_perf_context_print). RSS: ru_maxrss of each child (wait4), mapped file pages "
          "included. Medians over rounds; ratio = median of per-round ours/llama.cpp; the last column divides "
          "each engine's best round (the least disturbed one on a shared machine).")


def main():
    ap = argparse.ArgumentParser(description="our engine vs llama.cpp on the same GGUF files")
    ap.add_argument("--llama-bin", default=os.environ.get("LLAMA_BIN"), help="llama.cpp bin dir (LLAMA_BIN)")
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--dir", default="build/bench-vs-llama", help="where the model files are cached")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1, help="timed runs per test inside each child")
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--json", help="also write every raw measurement here")
    ap.add_argument("--llama-desc", default=os.environ.get("LLAMA_DESC"),
                    help="what the llama.cpp build is, for the header (a build from a source snapshot "
                         "reports no commit); LLAMA_DESC")
    ap.add_argument("--from-json", help="print the tables from a --json file of an earlier run (complete "
                                        "rounds only) instead of measuring")
    a = ap.parse_args()
    a.types = [t for t in a.types.split(",") if t]
    if a.from_json:
        with open(a.from_json) as fi:
            d = json.load(fi)
        raw = {t: v for t, v in d["raw"].items() if v}
        n = min(len(v) for v in raw.values())
        raw = {t: v[:n] for t, v in raw.items()}
        a.types = [t for t in TYPES if t in raw] + [t for t in raw if t not in TYPES]
        render(a, raw, d["floors"], {t: os.path.join(a.dir, f"1b-{t}.gguf") for t in a.types})
        return
    if not a.llama_bin:
        ap.error("--llama-bin DIR (or LLAMA_BIN) is needed")
    for exe in ("llama-bench", "llama-batched-bench", "llama-quantize"):
        if not os.access(os.path.join(a.llama_bin, exe), os.X_OK):
            ap.error(f"{a.llama_bin}/{exe} not found or not executable")
    for exe in ("inferno-bench", "inferno-model"):
        if not os.access(os.path.join(a.bin, exe), os.X_OK):
            ap.error(f"{a.bin}/{exe} not found (make all)")

    paths = make_files(a)
    raw = {t: [] for t in a.types}  # per round: {"ours": {...}, "llama": {...}}
    fls = []
    t_start = time.monotonic()
    for r in range(a.rounds):
        fls.append(floors(a))
        for t in a.types:
            p = paths[t]
            order = ["ours", "llama"] if r % 2 == 0 else ["llama", "ours"]
            res = {}
            for who in order:
                if who == "ours":
                    s, b = ours_single(a, p), ours_batched(a, p)
                else:
                    s, b = llama_single(a, p), llama_batched(a, p)
                res[who] = {"pp": s.get("pp"), "tg": s.get("tg"), "batched": b["batched"],
                            "load_s": s.get("load_s") if who == "ours" else b["load_s"],
                            "rss_kb": s["rss_kb"], "rss_batched_kb": b["rss_kb"],
                            "single": s["info"], "batched_info": b["info"]}
            res["loadavg"] = os.getloadavg()[0]  # 1-minute load after the pair: how shared the CPU was
            raw[t].append(res)
            o, l = res["ours"], res["llama"]
            log(f"round {r + 1}/{a.rounds} {t}: tg {fmt(o['tg'])}/{fmt(l['tg'])}  pp {fmt(o['pp'])}/{fmt(l['pp'])}"
                f"  batched {fmt(o['batched'])}/{fmt(l['batched'])} tok/s (ours/llama.cpp)"
                f"  [{time.monotonic() - t_start:.0f} s]")
            if a.json:  # after every file, so an interrupted run keeps what it measured
                with open(a.json, "w") as fo:
                    json.dump({"floors": fls, "raw": raw}, fo, indent=1)

    render(a, raw, fls, paths)
    if a.json:
        with open(a.json, "w") as fo:
            json.dump({"floors": fls, "raw": raw}, fo, indent=1)


if __name__ == "__main__":
    main()
