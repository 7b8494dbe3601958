"""``lsmap submit``: run any lsmap command as a job on a Ray cluster."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="run an lsmap command as a Ray job on a cluster",
        description=(
            "Submit `lsmap COMMAND ...` to a Ray cluster with the job submission SDK, carrying "
            "this project (--working-dir) and the AWS_*/RAY_* environment. The submission id "
            "comes from the command, so submitting the same command again reports the existing "
            "job instead of starting another. With --wait, stream the job's logs and exit with "
            "its outcome (0 = SUCCEEDED). With token authentication, set RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN (or ~/.ray/auth_token). Example: lsmap submit --address "
            "http://head:8265 --wait -- scan --config s3://bucket/watch.yaml"
        ),
    )
    parser.add_argument(
        "--address", required=True, help="the cluster's dashboard URL, e.g. http://127.0.0.1:8265"
    )
    parser.add_argument(
        "--wait", action="store_true", help="follow the job's logs until it ends; exit with it"
    )
    parser.add_argument(
        "--submission-id",
        help="job id (default: derived from the command; give a new one to run it again)",
    )
    parser.add_argument(
        "--working-dir",
        help="folder shipped to the cluster (default: this lsmap source checkout, if any)",
    )
    parser.add_argument(
        "--pip",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="a package the job installs first, e.g. 'lsmap==0.1.0' (repeatable)",
    )
    parser.add_argument(
        "--forward-credentials",
        action="store_true",
        help="also send AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN with the job; "
        "Ray stores them in the job's spec, readable by anyone who can list jobs, so prefer the "
        "cluster's own role or secrets",
    )
    # Not `command`: the top-level parser keeps the subcommand's name there.
    parser.add_argument(
        "wrapped", nargs="+", metavar="-- COMMAND", help="the lsmap command and its arguments"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.submit import submit

    return submit(
        args.address,
        args.wrapped,
        wait=args.wait,
        submission_id=args.submission_id,
        working_dir=args.working_dir,
        pip=args.pip,
        forward_credentials=args.forward_credentials,
    )
