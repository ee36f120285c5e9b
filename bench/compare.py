#!/usr/bin/python3
"""bench/compare.py — imcap against PyTorch on the same weights, row by row.

    bench/compare.py --imcap BUILD/imcap --bench BUILD/bench/imcap-bench [--quick] [--rounds N]
                     [--model M] [--out bench/results.md] [--json FILE] [--no-torch]

bench/run.sh builds imcap and calls this; see bench/README.md for every row.
Steps: (1) make the images (`imcap synth`); (2) check that PyTorch (bench/
torch_ref.py) gives the same captions as `imcap batch` on samples/ and the
synthetic scenes, greedy and beam 3, before anything is timed; (3) choose
PyTorch's best variant per row (eager, torch.jit.trace / script, with or
without torch.jit.freeze) and check its captions too; (4) for every row, run
imcap's measurement (`imcap-bench --only GROUP --single-thread`, or the
`imcap` process) and PyTorch's alternately for several rounds and report the
median of the rounds; (5) write the report. One thread on both sides:
OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1, torch.set_num_threads(1).
Without PyTorch it runs imcap's rows only and says so.
"""
import os

# before numpy / torch start their thread pools
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

ENC_BATCH = 32
DEC_ROWS = (1, 3, 32, 96)


def log(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {r.returncode}: {r.stderr.strip()[-800:]}")
    return r.stdout


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_ids():
    fam = mod = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu family") and fam is None:
                    fam = line.split(":", 1)[1].strip()
                elif line.startswith("model\t") and mod is None:
                    mod = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return fam, mod


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def err_line(e):
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:160]


def cpu_seconds():
    """(seconds of CPU time all processes used, seconds this process and its
    waited-for children used) so far."""
    busy = 0.0
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(v) - v[3] - (v[4] if len(v) > 4 else 0)) / os.sysconf("SC_CLK_TCK")  # all but idle, iowait
    except (OSError, ValueError):
        pass
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


def median(xs):
    return statistics.median(xs) if xs else None


# ------------------------------------------------------------------ imcap's side

class Imcap:
    def __init__(self, args):
        self.exe, self.bench, self.model = args.imcap, args.bench, args.model
        self.min_time, self.min_reps = args.min_time, args.min_reps
        self.info = None

    def bench_group(self, group, extra=()):
        """{row name: result dict} of one imcap-bench group, one thread."""
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tf:
            path = tf.name
        try:
            cmd = [self.bench, "--only", group, "--single-thread", "--min-time", str(self.min_time),
                   "--min-reps", str(self.min_reps), "--json", path, "--imcap", self.exe, "--model", self.model,
                   *extra]
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            if r.returncode >= 2 or not os.path.getsize(path):
                raise RuntimeError(f"imcap-bench --only {group} exited with {r.returncode}: {r.stderr.strip()[-800:]}")
            with open(path) as f:
                j = json.load(f)
        finally:
            os.unlink(path)
        if self.info is None:
            self.info = j
        return {r["name"]: r for r in j["results"]}

    def batch(self, folder, beam, out):
        cmd = [self.exe, "batch", "--threads", "1", "--beam", str(beam), "--no-timing", "-q", "--model", self.model,
               "-o", out, folder]
        t0 = time.perf_counter()
        run(cmd)
        return time.perf_counter() - t0

    def captions(self, inputs, beam, out):
        """{realpath: caption} from `imcap batch` (all cores: not timed)."""
        run([self.exe, "batch", "--beam", str(beam), "--no-timing", "-q", "--model", self.model, "-o", out,
             *inputs])
        res = {}
        with open(out) as f:
            for line in f:
                r = json.loads(line)
                res[os.path.realpath(r["path"])] = r.get("caption")
        return res

    def cli(self, image, reps):
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            run([self.exe, "caption", "--threads", "1", "--model", self.model, image])
            ts.append(time.perf_counter() - t0)
        return median(ts)


# ------------------------------------------------------------------ PyTorch's side

class Torch:
    def __init__(self, args, tr):
        import torch
        self.torch, self.tr = torch, tr
        tr.one_thread()
        self.args = args
        self.model = tr.Model(args.model)
        self.engines = {}
        self.best = {}        # row -> variant (or (variant, chunk) for the folder rows)
        self.trials = {}      # row -> {variant: ms or error}
        self.trainers = {}

    def engine(self, variant):
        if variant not in self.engines:
            eng = self.tr.Engine(self.model, variant)
            if variant != "eager":
                eng.check_against(self.engine("eager"))
            self.engines[variant] = eng
        return self.engines[variant]

    def measure(self, fn, min_time=None, min_reps=None, best=False):
        """The median (or with best=True the minimum: what the variant can do
        undisturbed, to choose between variants on a noisy machine)."""
        a = self.args
        with self.torch.inference_mode():
            med, mn, n, inner = self.tr.measure(fn, a.min_time if min_time is None else min_time,
                                                a.min_reps if min_reps is None else min_reps, a.rep_target)
        return mn if best else med

    # -- the work of each row: a function of the engine
    def inputs(self, rgb):
        torch, m = self.torch, self.model
        self.x1 = m.to_input(rgb[None])
        self.x32 = m.to_input(rgb[None]).expand(ENC_BATCH, -1, -1, -1).contiguous()
        with torch.inference_mode():
            a, p, h, c = self.engine("eager").encode(self.x1)
        self.enc_out = (a, p, h, c)
        V = m.V
        self.dec_in = {}
        for N in DEC_ROWS:
            tok = torch.tensor([1] + [4 + n % (V - 4) for n in range(1, N)])
            hN, cN = h.expand(N, -1).contiguous(), c.expand(N, -1).contiguous()
            if N < 32:  # rows of one image
                self.dec_in[N] = (tok, hN, cN, a[0], p[0])
            else:  # rows of 32 images (1 or 3 rows each), each row with its own copy
                self.dec_in[N] = (tok, hN, cN, a.expand(N, -1, -1).contiguous(), p.expand(N, -1, -1).contiguous())
        self.rgb = rgb

    def row_fn(self, row, eng):
        tr = self.tr
        if row == "enc1":
            return lambda: eng.encode(self.x1), 1
        if row == "enc32":
            return lambda: eng.encode(self.x32), ENC_BATCH
        if row.startswith("dec"):
            N = int(row[3:])
            step = eng.step1 if N < 32 else eng.stepn
            args = self.dec_in[N]
            return lambda: step(*args), N
        if row == "greedy":
            return lambda: tr.caption_one(eng, self.rgb, 1), 1
        if row == "beam3":
            return lambda: tr.caption_one(eng, self.rgb, 3), 1
        raise KeyError(row)

    def choose(self, rows):
        """Quick timing of every variant for each row; keeps the fastest."""
        for row in rows:
            self.trials[row] = {}
            for v in self.tr.VARIANTS:
                try:
                    eng = self.engine(v)
                except Exception as e:  # noqa: BLE001
                    self.trials[row][v] = f"failed: {err_line(e)}"
                    continue
                fn, per = self.row_fn(row, eng)
                self.trials[row][v] = self.measure(fn, self.args.select_time, 5, best=True) / per * 1e3
            ok = {v: t for v, t in self.trials[row].items() if isinstance(t, float)}
            self.best[row] = min(ok, key=ok.get)
            log(f"  {row}: " + ", ".join(f"{v} {t:.4g}" if isinstance(t, float) else f"{v} {t}"
                                         for v, t in self.trials[row].items()) + f" -> {self.best[row]}")

    def time_row(self, row):
        fn, per = self.row_fn(row, self.engine(self.best[row]))
        return self.measure(fn) / per

    # -- folder mode
    def folder(self, files, beam, variant, chunk):
        """Seconds for the whole folder: the model file's loading, PNG
        decoding, preprocessing, encoder, search, caption strings (not the
        jit compilation of a variant, done once before)."""
        t0 = time.perf_counter()
        self.tr.Model(self.args.model)  # what loading the model costs (the engine is built already)
        t1 = time.perf_counter()
        with self.torch.inference_mode():
            res = self.tr.caption_folder(self.engine(variant), files, beam, chunk)
        t2 = time.perf_counter()
        return (t1 - t0) + (t2 - t1), res

    def choose_folder(self, sel_files, files, beam, chunks):
        """The variant on sel_files (all of them in one chunk), then the chunk
        size with that variant on the timed folder itself."""
        row = f"folder{beam}"
        self.trials[row] = {}

        def trial(key, fs, v, ch):
            try:
                t = self.folder(fs, beam, v, ch)[0]
                self.trials[row][key] = t / len(fs) * 1e3
            except Exception as e:  # noqa: BLE001
                self.trials[row][key] = f"failed: {err_line(e)}"

        for v in self.tr.VARIANTS:
            trial(f"{v} ({len(sel_files)} images)", sel_files, v, None)
        ok = {k: t for k, t in self.trials[row].items() if isinstance(t, float)}
        v = min(ok, key=ok.get).split(" (")[0]
        for ch in chunks:
            trial(f"{v}, chunk {ch or 'all'} ({len(files)} images)", files, v, ch)
        ok = {k: t for k, t in self.trials[row].items() if isinstance(t, float) and ", chunk " in k}
        ch = min(ok, key=ok.get).split(", chunk ")[1].split(" (")[0]
        self.best[row] = (v, None if ch == "all" else int(ch))
        log(f"  {row}: " + ", ".join(f"{k} {t:.4g}" if isinstance(t, float) else f"{k} {t}"
                                     for k, t in self.trials[row].items()) + f" -> {v}, chunk {ch}")

    # -- training
    def trainer(self, variant):
        if variant not in self.trainers:
            self.trainers[variant] = self.tr.Trainer(self.model, variant)
        return self.trainers[variant]

    def choose_train(self):
        self.trials["train"] = {}
        for v in ("eager", "script"):
            try:
                t = self.trainer(v)
                self.trials["train"][v] = self.tr.measure(t.step, self.args.select_time, 3, 0.0)[1] * 1e3
            except Exception as e:  # noqa: BLE001
                self.trials["train"][v] = f"failed: {err_line(e)}"
        ok = {v: t for v, t in self.trials["train"].items() if isinstance(t, float)}
        self.best["train"] = min(ok, key=ok.get)
        log("  train: " + ", ".join(f"{v} {t:.4g}" if isinstance(t, float) else f"{v} {t}"
                                    for v, t in self.trials["train"].items()) + f" -> {self.best['train']}")

    def time_train(self):
        t = self.trainer(self.best["train"])
        return self.tr.measure(t.step, self.args.min_time, self.args.min_reps, 0.0)[0]

    def cli(self, image):
        t0 = time.perf_counter()
        run([sys.executable, os.path.join(HERE, "torch_ref.py"), "caption", "--model", self.args.model, image])
        return time.perf_counter() - t0


# ------------------------------------------------------------------ verification

def verify(imc, tch, inputs, files, tmp, out):
    """Captions of imcap batch (greedy, beam 3) against PyTorch's folder mode
    and one-image mode; fills out['verify']."""
    tr, m = tch.tr, tch.model
    rgb = {f: m.load_rgb(f) for f in files}
    res, refs = {}, {}
    for beam in (1, 3):
        ref = refs[beam] = imc.captions(inputs, beam, os.path.join(tmp, f"verify{beam}.jsonl"))
        modes = {}
        for name, variant in (("folder, eager", "eager"), ("one image, eager", "eager")):
            if name.startswith("folder"):
                with tch.torch.inference_mode():
                    got = dict(tr.caption_folder(tch.engine(variant), files, beam))
            else:
                with tch.torch.inference_mode():
                    got = {f: m.text(tr.caption_one(tch.engine(variant), rgb[f], beam)) for f in files}
            modes[name] = got
        for name, got in modes.items():
            diffs = [(f, ref.get(os.path.realpath(f)), got[f]) for f in files if ref.get(os.path.realpath(f)) != got[f]]
            res[(beam, name)] = (len(files) - len(diffs), len(files), diffs)
            log(f"  beam {beam}, {name}: {len(files) - len(diffs)}/{len(files)} identical")
    out["verify"] = res
    out["verify_ref"] = refs
    out["verify_rgb"] = rgb


def verify_best(tch, files, out):
    """The same check for the variants chosen for the timed rows."""
    tr, m = tch.tr, tch.model
    refs, rgb = out["verify_ref"], out["verify_rgb"]
    for beam, row, one_row in ((1, "folder1", "greedy"), (3, "folder3", "beam3")):
        v, ch = tch.best[row]
        if v != "eager" or ch is not None:
            with tch.torch.inference_mode():
                got = dict(tr.caption_folder(tch.engine(v), files, beam, ch))
            name = f"folder, {v}, chunk {ch or 'all'}"
            diffs = [(f, refs[beam].get(os.path.realpath(f)), got[f]) for f in files
                     if refs[beam].get(os.path.realpath(f)) != got[f]]
            out["verify"][(beam, name)] = (len(files) - len(diffs), len(files), diffs)
            log(f"  beam {beam}, {name}: {len(files) - len(diffs)}/{len(files)} identical")
        v = tch.best[one_row]
        if v != "eager":
            with tch.torch.inference_mode():
                got = {f: m.text(tr.caption_one(tch.engine(v), rgb[f], beam)) for f in files}
            name = f"one image, {v}"
            diffs = [(f, refs[beam].get(os.path.realpath(f)), got[f]) for f in files
                     if refs[beam].get(os.path.realpath(f)) != got[f]]
            out["verify"][(beam, name)] = (len(files) - len(diffs), len(files), diffs)
            log(f"  beam {beam}, {name}: {len(files) - len(diffs)}/{len(files)} identical")


# ------------------------------------------------------------------ the report

def fmt(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def spread(xs):
    if not xs or len(xs) < 2:
        return "—"
    m = median(xs)
    return f"±{50 * (max(xs) - min(xs)) / m:.0f}%" if m else "—"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--imcap", default=os.path.join(ROOT, "build-bench", "imcap"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "build-bench", "bench", "imcap-bench"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default.safetensors"))
    ap.add_argument("--quick", action="store_true", help="a smoke test: 2 rounds, short timings, fewer images")
    ap.add_argument("--rounds", type=int, default=0, help="rounds per row (default 5, --quick 2)")
    ap.add_argument("--folder-count", type=int, default=0, help="images of the folder rows (default 1200)")
    ap.add_argument("--verify-count", type=int, default=0, help="synthetic scenes checked (default 300)")
    ap.add_argument("--no-torch", action="store_true", help="imcap's rows only")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--command", default="bench/compare.py")
    ap.add_argument("--commit", default=None)
    ap.add_argument("--build-desc", default="")
    args = ap.parse_args()
    q = args.quick
    args.rounds = args.rounds or (2 if q else 5)
    args.folder_count = args.folder_count or (120 if q else 1200)
    args.verify_count = args.verify_count or (60 if q else 300)
    args.min_time, args.min_reps, args.rep_target = (0.05, 3, 0.002) if q else (0.5, 5, 0.01)
    args.select_time = 0.03 if q else 0.2
    args.model = os.path.abspath(args.model)
    for exe in (args.imcap, args.bench):
        if not os.access(exe, os.X_OK):
            sys.exit(f"compare: {exe} not found (run bench/run.sh, which builds it)")

    t_start = time.time()
    load_start = loadavg()
    cpu_start = cpu_seconds()
    out = {}
    tr, torch_note = None, ""
    if args.no_torch:
        torch_note = "PyTorch left out (--no-torch)"
    else:
        try:
            import torch_ref as tr  # noqa: F811
        except ImportError as e:
            torch_note = (f"PyTorch not available to {sys.executable} ({e}): imcap's rows only. "
                          "Install it with scripts/setup.sh --bench-deps")
    if torch_note:
        log(torch_note)

    imc = Imcap(args)
    tch = Torch(args, tr) if tr else None
    tmp = tempfile.mkdtemp(prefix="imcap-compare-")
    try:
        # ---- images
        log(f"imcap synth: {args.verify_count} scenes (seed 7) and {args.folder_count} scenes (seed 1, 64 px)")
        run([args.imcap, "synth", "--count", str(args.verify_count), "--seed", "7", "-o",
             os.path.join(tmp, "verify")])
        run([args.imcap, "synth", "--count", str(args.folder_count), "--size", "64", "--seed", "1", "-o",
             os.path.join(tmp, "folder")])
        vdir, fdir = os.path.join(tmp, "verify", "images"), os.path.join(tmp, "folder", "images")
        samples = sorted(os.path.join(ROOT, "samples", f) for f in os.listdir(os.path.join(ROOT, "samples"))
                         if f.endswith(".png"))
        vfiles = samples + sorted(os.path.join(vdir, f) for f in os.listdir(vdir))
        ffiles = sorted(os.path.join(fdir, f) for f in os.listdir(fdir))
        one = os.path.join(vdir, "000000.png")  # the caption rows' and the CLI row's image (64x64)

        # ---- correctness before any timing
        if tch:
            log("checking PyTorch's captions against imcap batch (greedy and beam 3) ...")
            verify(imc, tch, [os.path.join(ROOT, "samples"), vdir], vfiles, tmp, out)
            with tch.torch.inference_mode():
                out["one_tokens"] = {b: len(tr.caption_one(tch.engine("eager"), tch.model.load_rgb(one), b))
                                     for b in (1, 3)}
            log("choosing PyTorch's best variant per row ...")
            tch.inputs(tch.model.load_rgb(one))
            tch.choose(["enc1", "enc32"] + [f"dec{n}" for n in DEC_ROWS] + ["greedy", "beam3"])
            chunks = [None, 128, 32] if not q else [None, 32]
            sel_files = vfiles[len(samples):]
            tch.choose_folder(sel_files, ffiles, 1, chunks)
            tch.choose_folder(sel_files, ffiles, 3, chunks)
            tch.choose_train()
            log("checking the chosen variants' captions ...")
            verify_best(tch, vfiles, out)

        # ---- rounds
        R = args.rounds
        im, pt, photo = {}, {}, {}   # row -> [per-round values] (seconds per unit, or images/s for the folder rows)

        def add(d, k, v):
            d.setdefault(k, []).append(v)

        def interleave(name, imcap_fn, torch_fn):
            for r in range(R):
                log(f"{name}: round {r + 1}/{R}")
                first, second = (imcap_fn, torch_fn) if r % 2 == 0 else (torch_fn, imcap_fn)
                for fn in (first, second):
                    if fn:
                        fn()

        def imcap_group(group, rows, extra=()):
            def f():
                res = imc.bench_group(group, extra)
                for key, (name, per) in rows.items():
                    r = res.get(name)
                    if r and r.get("ok"):
                        add(im, key, r["median"] / 1e3 / per)
                    else:
                        out.setdefault("imcap_notes", {})[key] = (r or {}).get("note", "not measured")
            return f

        def torch_rows(keys):
            def f():
                for k in keys:
                    add(pt, k, tch.time_row(k))
            return f if tch else None

        interleave("encoder", imcap_group("encoder", {"enc1": ("encoder", 1),
                                                      "enc32": (f"encoder batch {ENC_BATCH}", 1)},
                                          ("--encoder-batch", str(ENC_BATCH))),
                   torch_rows(["enc1", "enc32"]))
        interleave("decoder", imcap_group("decoder", {f"dec{n}": (f"decoder step N={n}", n) for n in DEC_ROWS}),
                   torch_rows([f"dec{n}" for n in DEC_ROWS]))
        interleave("caption", imcap_group("caption", {"greedy": ("caption greedy", 1), "beam3": ("caption beam 3", 1)},
                                          ("--natural-length", "--caption-image", one)),
                   torch_rows(["greedy", "beam3"]))

        def imcap_folder(beam):
            def f():
                t = imc.batch(fdir, beam, os.path.join(tmp, f"folder{beam}.jsonl"))
                add(im, f"folder{beam}", len(ffiles) / t)
            return f

        def torch_folder(beam):
            def f():
                v, ch = tch.best[f"folder{beam}"]
                t, _ = tch.folder(ffiles, beam, v, ch)
                add(pt, f"folder{beam}", len(ffiles) / t)
            return f if tch else None

        interleave("folder greedy", imcap_folder(1), torch_folder(1))
        interleave("folder beam 3", imcap_folder(3), torch_folder(3))

        def imcap_train():
            res = imc.bench_group("train")
            r = res.get("train step")
            if r and r.get("ok"):
                add(im, "train", 32 / (r["median"] / 1e3))

        interleave("train", imcap_train, (lambda: add(pt, "train", 32 / tch.time_train())) if tch else None)

        def imcap_cli():
            add(im, "cli", imc.cli(one, 3 if q else 5))

        interleave("CLI latency", imcap_cli, (lambda: add(pt, "cli", tch.cli(one))) if tch else None)

        # ---- photo scale: ResNet-50 at 224 (needs torchvision for the weights)
        try:
            import photo_encoder as pe
        except ImportError as e:
            pe = None
            log(f"ResNet-50 rows left out: {e}")
        if tch and pe:
            log("ResNet-50: weights, imcap model, parity check ...")
            r50, net, pnote = pe.prepare(args.imcap, tmp, samples[0])
            photo["note"], photo["batches"] = pnote, pe.BATCHES
            fns = {}
            with tch.torch.inference_mode():
                for n in pe.BATCHES:
                    vs = pe.variants(net, n)
                    trials = {v: tch.measure(f, min_time=args.select_time, min_reps=3, best=True) / n * 1e3
                              for v, f in vs.items()}
                    best = min(trials, key=trials.get)
                    tch.trials[f"r50_{n}"] = trials
                    photo[f"variant_{n}"] = tch.best[f"r50_{n}"] = best
                    fns[n] = vs[best]

            def imcap_r50():
                res = imc.bench_group("encoder", ("--model", r50, "--encoder-batch", str(pe.BATCHES[-1])))
                for n in pe.BATCHES:
                    r = res.get("encoder" if n == 1 else f"encoder batch {n}")
                    if r and r.get("ok"):
                        add(im, f"r50_{n}", r["median"] / 1e3)
                        add(photo, f"gflops_{n}", r.get("gflops", 0))

            def torch_r50():
                for n in pe.BATCHES:
                    add(pt, f"r50_{n}", tch.measure(fns[n]) / n)

            interleave("ResNet-50 encoder", imcap_r50, torch_r50)

        limits = {}

        def imcap_limits():
            for name, r in imc.bench_group("limits").items():
                limits.setdefault(name, []).append(r)

        interleave("machine limits", imcap_limits, None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- report
    load_end = loadavg()
    cpu_end = cpu_seconds()
    wall = time.time() - t_start
    others = ((cpu_end[0] - cpu_start[0]) - (cpu_end[1] - cpu_start[1])) / wall if wall > 0 else 0
    info = imc.info or {}
    dec_note = ""
    lim = {}
    for name, rs in limits.items():
        ok = [r for r in rs if r.get("ok")]
        if ok:
            lim[name] = dict(ok[0], median=median([r["median"] for r in ok]),
                             throughput=median([r.get("throughput", 0) for r in ok]),
                             gflops=median([r.get("gflops", 0) for r in ok]))
    # the derived rows again, from the median bandwidths, so the table agrees with itself
    reads = [(n, r) for n, r in lim.items() if n.startswith("read ")]
    for (rname, rr), lname in zip(reads, ("decoder step limit (cache)", "decoder step limit (memory)")):
        r = lim.get(lname)
        mb = re.search(r"([0-9.]+) MB of decoder step weights", r.get("note", "")) if r else None
        if r and mb and rr.get("throughput"):
            r["median"] = float(mb.group(1)) * 1e6 / (rr["throughput"] * 1e9) * 1e3
            r["note"] = (f"derived: {mb.group(1)} MB of decoder step weights (one row) / the `{rname}` rate: the "
                         "least a 1-row step can take when it reads every weight once")
    lc = lim.get("decoder step limit (cache)")
    if lc:
        dec_note = f"limit {lc['median']:.3g} ms (step weights / cache bandwidth)"

    def ms(key):
        return [v * 1e3 for v in im.get(key, [])], [v * 1e3 for v in pt.get(key, [])]

    ot = out.get("one_tokens", {})
    photo_rows = []
    for n in photo.get("batches", ()):
        a, b = [v * 1e3 for v in im.get(f"r50_{n}", [])], [v * 1e3 for v in pt.get(f"r50_{n}", [])]
        va, vb = median(a), median(b)
        gf = median(photo.get(f"gflops_{n}", [])) or 0
        photo_rows.append(dict(row=f"ResNet-50 to layer4 at 224, batch {n}", unit="ms/image", key=f"r50_{n}", imcap=va,
                               torch=vb, ratio=vb / va if va and vb else None,
                               variant=photo.get(f"variant_{n}", "—"), spread_imcap=spread(a), spread_torch=spread(b),
                               note=f"imcap {gf:.0f} GFLOP/s; + decoder preparation (512 wide); {photo.get('note', '')}",
                               imcap_rounds=a, torch_rounds=b))
    rows = [
        ("encoder, batch 1", "ms/image", "enc1", "time", "CNN + annotation vectors + encoder_att, init_h, init_c"),
        (f"encoder, imcap batch {ENC_BATCH} vs PyTorch batch {ENC_BATCH}", "ms/image", "enc32", "time",
         f"{ENC_BATCH} images per call"),
        ("decoder step, 1 row", "ms", "dec1", "time", dec_note),
        ("decoder step, 3 rows (one image)", "ms/row", "dec3", "time", "beam 3's step"),
        ("decoder step, 32 rows (32 images)", "ms/row", "dec32", "time", "greedy over 32 images at once"),
        ("decoder step, 96 rows (32 images x 3)", "ms/row", "dec96", "time", "beam 3 over 32 images at once"),
        ("greedy caption, batch 1", "ms", "greedy", "time",
         f"decoded 64x64 image, natural length ({ot.get(1, '?')} tokens)" if ot else "decoded 64x64 image, natural length"),
        ("beam 3 caption, batch 1", "ms", "beam3", "time",
         f"natural length ({ot.get(3, '?')} tokens)" if ot else "natural length"),
        (f"folder of {args.folder_count}, greedy", "images/s", "folder1", "rate",
         "imcap batch --threads 1 process vs PyTorch folder mode, PNG decoding included"),
        (f"folder of {args.folder_count}, beam 3", "images/s", "folder3", "rate", "the same, beam 3"),
        ("training step, batch 32 x 12 tokens, Adam", "examples/s", "train", "rate",
         "forward, cross-entropy + attention regulariser, backward, clip, Adam"),
        ("one-image CLI latency, beam 3", "ms", "cli", "time",
         "`imcap caption` process vs `python3 torch_ref.py caption` process (import torch included)"),
    ]
    table = []
    for label, unit, key, kind, note in rows:
        if key == "cli":
            table += photo_rows
        if kind == "time":
            a, b = ms(key)
        else:
            a, b = im.get(key, []), pt.get(key, [])
        va, vb = median(a), median(b)
        ratio = None
        if va and vb:
            ratio = vb / va if kind == "time" else va / vb
        if key in out.get("imcap_notes", {}) and va is None:
            note = (note + "; " if note else "") + "imcap: " + out["imcap_notes"][key]
        variant = "—"
        if tch and key in tch.best:
            b_ = tch.best[key]
            variant = b_ if isinstance(b_, str) else f"{b_[0]}, chunk {b_[1] or 'all'}"
        elif tch and key == "cli":
            variant = "eager"
        table.append(dict(row=label, unit=unit, key=key, imcap=va, torch=vb, ratio=ratio, variant=variant,
                          spread_imcap=spread(a), spread_torch=spread(b), note=note, imcap_rounds=a, torch_rounds=b))

    fam, mod = cpu_ids()
    lines = ["# imcap against PyTorch", ""]
    lines.append(f"Command: `{args.command}`{' (' + args.build_desc + ')' if args.build_desc else ''} at commit "
                 f"{args.commit or 'unknown'}, run on {time.strftime('%Y-%m-%d %H:%M:%S %Z')} "
                 f"({(time.time() - t_start) / 60:.1f} min). What every row means: bench/README.md.")
    lines.append("")
    if q:
        lines += ["**QUICK mode**: a smoke test, the numbers are not worth keeping.", ""]
    lines.append(f"- Machine: {cpu_model()} (family {fam}, model {mod}), {os.cpu_count()} cores online; "
                 f"load average {load_start} at the start, {load_end} at the end; other processes kept "
                 f"{max(others, 0):.2f} cores busy on average during the run (this benchmark uses one)")
    lines.append(f"- OpenBLAS (both sides): {info.get('openblas', 'unknown')}"
                 f"{'; OPENBLAS_CORETYPE=' + os.environ['OPENBLAS_CORETYPE'] if os.environ.get('OPENBLAS_CORETYPE') else ''}")
    lines.append(f"- imcap: {info.get('compiler', '')}; model {info.get('model', args.model)}")
    if tch:
        import torch
        cfg = torch.__config__.show()
        onednn = next((ln.strip(" -") for ln in cfg.splitlines() if "MKL-DNN" in ln or "oneDNN" in ln), "no oneDNN")
        cap = next((ln.split(":", 1)[1].strip() for ln in cfg.splitlines() if "CPU capability" in ln), "?")
        lines.append(f"- PyTorch {torch.__version__} ({sys.executable}, Python {platform.python_version()}): "
                     f"{onednn} for the convolutions, OpenBLAS for the matrix products, CPU capability {cap}; "
                     f"torch.get_num_threads() = {torch.get_num_threads()}")
    else:
        lines.append(f"- **{torch_note}**")
    lines.append(f"- One thread on both sides (OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1, torch.set_num_threads(1)). "
                 f"{args.rounds} rounds per row, imcap and PyTorch alternating (imcap first in odd rounds); "
                 f"each figure is the median of the rounds' medians (each round: at least {args.min_time} s and "
                 f"{args.min_reps} repetitions); spread = half the range of the rounds, in % of the median.")
    lines.append("")

    if "verify" in out:
        lines += ["## Same captions", ""]
        lines.append(f"imcap batch against PyTorch on the {len(vfiles) - args.verify_count} images of samples/ (128 px, "
                     f"resized) and {args.verify_count} scenes of `imcap synth --count {args.verify_count} --seed 7` "
                     "(64 px), before anything is timed:")
        lines.append("")
        lines.append("| search | PyTorch mode | identical captions |")
        lines.append("|---|---|---:|")
        all_diffs = []
        for (beam, name), (same, n, diffs) in out["verify"].items():
            lines.append(f"| {'greedy' if beam == 1 else 'beam 3'} | {name} | {same}/{n} |")
            all_diffs += [(beam, name) + d for d in diffs]
        lines.append("")
        if all_diffs:
            lines.append("Differences (tiny float differences can flip a near-tie):")
            lines.append("")
            for beam, name, f, a, b in all_diffs[:20]:
                lines.append(f"- beam {beam}, {name}, `{os.path.basename(f)}`: imcap \"{a}\", PyTorch \"{b}\"")
            lines.append("")

    lines += ["## Speed", "",
              "ratio = imcap's speed / PyTorch's (> 1: imcap is faster).", "",
              "| row | unit | imcap | PyTorch best | ratio | PyTorch variant | spread imcap / PyTorch | notes |",
              "|---|---|---:|---:|---:|---|---|---|"]
    for t in table:
        lines.append(f"| {t['row']} | {t['unit']} | {fmt(t['imcap'])} | {fmt(t['torch'])} | "
                     f"{fmt(t['ratio']) if t['ratio'] else '—'} | {t['variant']} | "
                     f"{t['spread_imcap']} / {t['spread_torch']} | {t['note']} |")
    lines.append("")

    if lim:
        lines += ["## The machine's limits (imcap-bench --only limits, one thread)", "",
                  "| measurement | time | rate | note |", "|---|---:|---:|---|"]
        for name, r in lim.items():
            rate = (f"{fmt(r['gflops'])} GFLOP/s" if r.get("gflops") else
                    f"{fmt(r['throughput'])} {r.get('throughput_unit', '')}" if r.get("throughput") else "—")
            lines.append(f"| {name} | {fmt(r['median'])} {r['unit']} | {rate} | {r.get('note', '')} |")
        d1 = next((t for t in table if t["key"] == "dec1"), None)
        lc = lim.get("decoder step limit (cache)")
        if d1 and d1["imcap"] and lc:
            lines.append("")
            lines.append(f"imcap's 1-row decoder step takes {fmt(d1['imcap'])} ms, {d1['imcap'] / lc['median']:.2f}x "
                         f"the time needed just to read its weights once from cache ({fmt(lc['median'])} ms).")
        lines.append("")

    if tch and tch.trials:
        lines += ["## PyTorch variants (short timings used to choose: the minimum over repetitions, ms per unit of the row)", "",
                  "| row | " + " | ".join(["variants"]) + " | chosen |", "|---|---|---|"]
        labels = {t["key"]: t["row"] for t in table}
        for row, trials in tch.trials.items():
            b_ = tch.best.get(row)
            chosen = b_ if isinstance(b_, str) else f"{b_[0]}, chunk {b_[1] or 'all'}"
            desc = "; ".join(f"{v} {fmt(t)}" if isinstance(t, float) else f"{v} {t}" for v, t in trials.items())
            lines.append(f"| {labels.get(row, row)} | {desc} | {chosen} |")
        lines.append("")

    report = "\n".join(lines)
    tmp_out = args.out + ".tmp"
    with open(tmp_out, "w") as f:
        f.write(report)
    os.replace(tmp_out, args.out)
    print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": table, "limits": lim, "quick": q, "rounds": args.rounds,
                       "trials": tch.trials if tch else {},
                       "verify": {f"beam{b} {n}": [s, t] for (b, n), (s, t, _) in out.get("verify", {}).items()}},
                      f, indent=1, default=str)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
