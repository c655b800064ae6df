"""The paper's ablations as DVC experiments (alexnet.claims.sweep: what each command does).

    alexnet-ablations list
    alexnet-ablations run [--arms no-lrn no-dropout] [--seeds 0 1] [--jobs 2] [--dry-run]
    alexnet-ablations status [--arms ...] [--seeds 0 1]
    alexnet-ablations collect --out ablations/results.json

On a SLURM cluster (alexnet.claims.slurm; docs/cluster.md), from a pushed commit:
    alexnet-ablations run --launcher slurm --partition gpu --account lab --gpus-per-job 1 \
        --time-min 720 --jobs 8 --shared /shared/$USER/ablations
    alexnet-ablations status --launcher slurm --shared /shared/$USER/ablations
    alexnet-ablations collect --git-remote origin --out ablations/results.json

(`python -m alexnet.tools.ablations ...` is the same.) Known errors exit 2 with one line.
"""

from __future__ import annotations

import argparse
import sys

from alexnet.claims.arms import ARMS, ARMS_BY_NAME, MEASURES, overrides_text
from alexnet.claims.slurm import SlurmSettings, pull_experiments, run_slurm, slurm_status, slurm_status_lines
from alexnet.claims.sweep import collect, exp_show, parse_set, run, seconds_per_net, status_lines, sweep_status
from alexnet.cli import run_tool
from alexnet.fileio import write_json
from alexnet.pipeline import layout


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alexnet-ablations", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the arms and what each changes")
    r = sub.add_parser("run", help="queue the arms as DVC experiments and run them")
    r.add_argument("--arms", nargs="+", default=[a.name for a in ARMS], choices=[a.name for a in ARMS],
                   help="arms to run (default: all, baseline included)")
    r.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per seed and arm (default: 0)")
    r.add_argument("--jobs", type=int, default=None,
                   help="runs at once: queue workers (local, default 1) or array tasks (slurm, default 8)")
    r.add_argument("--target", default="evaluate", help="stage each run goes up to (default evaluate; '' = all)")
    r.add_argument("--records", default=layout.RECORDS, help="folder with the baseline's run records, train-seed<N>.json")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a param set alike for every arm, baseline included (e.g. train.epochs=2 for a quick check)")
    r.add_argument("--dry-run", action="store_true", help="print the commands and the cost, queue nothing")
    launcher(r)
    s = r.add_argument_group("slurm", "what each job asks for (--launcher slurm)")
    defaults = SlurmSettings()
    s.add_argument("--partition", help="SLURM partition (default: SBATCH_PARTITION, else the cluster's)")
    s.add_argument("--account", help="SLURM account (default: SBATCH_ACCOUNT, else yours)")
    s.add_argument("--gpus-per-job", type=int, default=defaults.gpus_per_job, help="GPUs per run (default 1)")
    s.add_argument("--cpus-per-job", type=int, default=defaults.cpus_per_job, help="CPUs per run (default 8)")
    s.add_argument("--time-min", type=int, default=defaults.time_min,
                   help="time limit per job in minutes (default 720); a job past it is requeued and resumes")
    s.add_argument("--mem-gb", type=float, default=None, help="memory per job (default: the cluster's)")
    s.add_argument("--scratch", default=None, help="node-local folder the jobs clone into "
                   "(default: $SLURM_TMPDIR, $TMPDIR or /tmp on the node)")
    s.add_argument("--no-wait", action="store_true", help="submit and return; `status` follows the jobs")
    s.add_argument("--poll", type=float, default=30.0, help="seconds between looks at the jobs while waiting")
    st = sub.add_parser("status", help="per arm and seed: done, running, queued, failed, stale or not run")
    st.add_argument("--arms", nargs="+", default=[a.name for a in ARMS], choices=[a.name for a in ARMS])
    st.add_argument("--seeds", nargs="+", type=int, default=[0])
    st.add_argument("--records", default=layout.RECORDS, help="folder with the baseline's run records, train-seed<N>.json")
    st.add_argument("--results", default=layout.ABLATION_RESULTS, help="collected runs (slurm: which are collected)")
    launcher(st)
    c = sub.add_parser("collect", help="gather the arms' metrics from `dvc exp show --json` into a file")
    c.add_argument("--out", default=layout.ABLATION_RESULTS)
    c.add_argument("--git-remote", default=None,
                   help="first `dvc exp pull` the experiments from this git remote (the slurm launcher's jobs push there)")
    c.add_argument("--all-commits", action="store_true", help="look at experiments of every commit, not only HEAD's")
    c.add_argument("--rev", default=None, help="look at the experiments of this commit instead of HEAD's")
    return p


def launcher(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: DVC's queue on this machine (default); slurm: a job array on the cluster")
    p.add_argument("--git-remote", default="origin", help="slurm: the git remote jobs clone from and push to")
    p.add_argument("--shared", default=".dvc/tmp/slurm",
                   help="slurm: a folder every node sees, for job logs and training state (default .dvc/tmp/slurm)")


def command(args: argparse.Namespace) -> None:
    if args.command == "list":
        for a in ARMS:
            print(f"{a.name:20s} {overrides_text(a)}\n{'':20s} {a.what}")
            if a.reference != "baseline" and a.judged_on:
                print(f"{'':20s} against: {a.reference}, seed by seed")
            for claim, measure in a.judged_on:
                print(f"{'':20s} judged on: {claim} by {MEASURES[measure].what}")
    elif args.command == "run":
        if "baseline" not in args.arms:
            print("note: the baseline arm is not among --arms; collect needs it for each seed")
        arms = [ARMS_BY_NAME[n] for n in args.arms]
        if args.launcher == "slurm":
            settings = SlurmSettings(args.partition, args.account, args.gpus_per_job, args.cpus_per_job, args.time_min,
                                     args.mem_gb, args.jobs if args.jobs is not None else SlurmSettings.parallel)
            run_slurm(arms, args.seeds, settings, git_remote=args.git_remote, shared=args.shared,
                      scratch=args.scratch, target=args.target or None, common=parse_set(args.set),
                      records_dir=args.records, dry_run=args.dry_run, wait=not args.no_wait, poll=args.poll)
        else:
            run(arms, args.seeds, args.jobs or 1, args.dry_run, args.target or None, args.records,
                common=parse_set(args.set))
    elif args.command == "status":
        arms = [ARMS_BY_NAME[n] for n in args.arms]
        if args.launcher == "slurm":
            rows = slurm_status(arms, args.seeds, git_remote=args.git_remote, shared=args.shared, results=args.results)
            print("\n".join(slurm_status_lines(rows)))
        else:
            rows, workers = sweep_status(arms, args.seeds)
            print("\n".join(status_lines(rows, workers, seconds_per_net(args.records))))
    else:
        if args.git_remote:
            pull_experiments(args.git_remote, args.rev, args.all_commits)
        extra = (["--all-commits"] if args.all_commits else []) + (["--rev", args.rev] if args.rev else [])
        results = collect(exp_show(*extra))
        write_json(args.out, results)
        print(f"{len(results['runs'])} run(s) written to {args.out}")


def main(argv: list[str] | None = None) -> int:
    return run_tool(command, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
