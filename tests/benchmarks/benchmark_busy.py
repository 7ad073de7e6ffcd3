"""Benchmark: the main job's training speed on a quiet CPU and beside one busy process, for three intra-op thread settings.

    .venv/bin/python tests/benchmarks/benchmark_busy.py [--epochs 2] [--warmup 3] [--rounds 2] [--nice 0]

Trains the `cpu` preset (the main job's, cached clips, no workers) for `--epochs` epochs per run and prints clips per
second over the steps after the first `--warmup`, each run quiet and then beside one busy loop (`python -c "while
True: pass"` at `nice -n --nice`, killed after the run), for: torch's default (`cpu_threads` = the core count, fixed),
one thread (`cpu_threads=1`), and the policy (`cpu_threads=0`: `crisscross.engine.ThreadPolicy`, which also lists the
thread counts it switched between), in `--rounds` rounds, the order reversed every other round; each figure is the
mean over the rounds, and percentages are of the default's quiet speed. The data set is decoded once (about 50 s), and
a short run warms the process up first (its first run is ~10% slower): the whole table takes about 5 minutes on 2
cores. Run it alone (under the shared lock): the figures only mean something when nothing else runs. Results: `nbs/results.ipynb`. Not a test: nothing is asserted.
"""
import argparse, contextlib, io, logging, statistics, subprocess, sys, tempfile, time

import torch

import crisscross.trainer as trainer


class Switches(logging.Handler):
    "Collects ThreadPolicy's switch messages."
    def __init__(self): super().__init__(logging.INFO); self.seen = []
    def emit(self, record): self.seen.append(record.getMessage().split(":")[0].replace("intra-op threads ", ""))


@contextlib.contextmanager
def busy_loop(on: bool, nice: int):
    "One busy process (at `nice`) while entered, when `on`."
    loop = subprocess.Popen(["nice", "-n", str(nice), sys.executable, "-c", "while True: pass"]) if on else None
    try: yield
    finally:
        if loop: loop.kill(); loop.wait()


def clips_per_s(dataset, cpu_threads: int, epochs: int, warmup: int, **over) -> float:
    "Clips per second of a fresh `cpu` preset run over its steps after the first `warmup`."
    cfg = trainer.config_from_preset("cpu", epochs=epochs, cpu_threads=cpu_threads, resume=False, progress=False, tensorboard=False,
                                     backbones_every=0, probe_every=0, **over)
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        log = trainer.train(cfg, dataset, out)["step_log"][warmup:]
    return sum(r["clips"] for r in log) / sum(r["seconds"] for r in log)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run (13 steps each)")
    ap.add_argument("--warmup", type=int, default=3, help="first steps of each run left out of the rate")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the six runs (the order reversed every other round)")
    ap.add_argument("--nice", type=int, default=0, help="niceness of the busy loop (19: the lowest priority)")
    args = ap.parse_args()
    start, cores = time.time(), torch.get_num_threads()
    dataset = trainer.make_dataset(trainer.check_config(trainer.config_from_preset("cpu", progress=False)))
    switches = Switches(); policy_log = logging.getLogger("crisscross.engine")
    policy_log.addHandler(switches); policy_log.setLevel(logging.INFO)
    clips_per_s(dataset, cores, 1, 0, max_steps=4)  # a process's first run is slower (allocator, kernel caches): not counted
    settings = ((f"torch default ({cores} threads)", cores), ("one thread", 1), ("policy (cpu_threads=0)", 0))
    runs = {(name, busy): ([], []) for name, _ in settings for busy in (False, True)}
    for r in range(args.rounds):  # the order reversed every other round: a process speeds up a little over its first runs
        for name, threads in settings[::-1] if r % 2 else settings:
            for busy in (False, True):
                switches.seen.clear()
                with busy_loop(busy, args.nice): runs[name, busy][0].append(clips_per_s(dataset, threads, args.epochs, args.warmup))
                runs[name, busy][1].extend(switches.seen)
    rows = {k: (statistics.mean(rates), seen) for k, (rates, seen) in runs.items()}
    quiet = rows[settings[0][0], False][0]
    print(f"cpu preset, {args.epochs} epochs a run, mean of {args.rounds} rounds, {cores} cores, busy loop at nice {args.nice}; "
          "% of the default's quiet speed")
    print(f"{'threads':<28}{'quiet clips/s':>14}{'%':>6}{'busy clips/s':>14}{'%':>6}   switches quiet | busy")
    for name in dict.fromkeys(k[0] for k in rows):
        (q, seen_q), (b, seen_b) = rows[name, False], rows[name, True]
        print(f"{name:<28}{q:14.1f}{100 * q / quiet:6.0f}{b:14.1f}{100 * b / quiet:6.0f}   {', '.join(seen_q) or '-'} | {', '.join(seen_b) or '-'}")
    print(f"({time.time() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
