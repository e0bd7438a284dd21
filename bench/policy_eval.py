#!/usr/bin/env python3
"""Policy.evaluate() of a 20-statement bucket policy: microseconds per call, in process.

The policy mixes what real ones hold: account and user principals, "*", action lists and
wildcards, object and bucket resources with wildcards and ${aws:username}, conditions on
aws:SourceIp, aws:SecureTransport, s3:prefix and dates, a NotPrincipal Deny. Each scenario
is a request that walks a different part of it (the first match, the last, none, a Deny).
Parsing (compiling) it once is timed too: the authorization step caches the result per text.
Times are this process's CPU time (time.process_time), so other load on the machine
inflates them less than wall-clock time would.

Run by hand (never from the tests):

    .venv/bin/python bench/policy_eval.py [--calls 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vaultaire.access.policy import parse_policy
from vaultaire.access.request import ANONYMOUS, AccessRequest, Principal

OWNER = "0123456789abcdef0123456789abcdef"
PARTNER = "fedcba9876543210fedcba9876543210"
BUCKET = "assets"


def policy_document() -> dict[str, Any]:
    arn = f"arn:aws:s3:::{BUCKET}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DenyPlainHttp",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOutsideOffice",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:DeleteObject", "s3:PutBucketPolicy"],
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}},
        },
        {
            "Sid": "OnlyAdminsDeleteVersions",
            "Effect": "Deny",
            "NotPrincipal": {"AWS": [f"arn:aws:iam::{OWNER}:user/admin", f"arn:aws:iam::{OWNER}:root"]},
            "Action": "s3:DeleteObjectVersion",
            "Resource": f"{arn}/*",
        },
    ]
    for i in range(8):
        statements.append(
            {
                "Sid": f"Team{i}",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{OWNER}:user/team{i}"},
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": f"{arn}/teams/team{i}/*",
            }
        )
    statements += [
        {
            "Sid": "HomeList",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OWNER}:root"},
            "Action": "s3:ListBucket",
            "Resource": arn,
            "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*", "home/${aws:username}"]}},
        },
        {
            "Sid": "Home",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OWNER}:root"},
            "Action": "s3:*Object",
            "Resource": f"{arn}/home/${{aws:username}}/*",
        },
        {
            "Sid": "PartnerRead",
            "Effect": "Allow",
            "Principal": {"AWS": PARTNER},
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [f"{arn}/shared/*", f"{arn}/exports/*.csv"],
            "Condition": {"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}},
        },
        {
            "Sid": "PartnerList",
            "Effect": "Allow",
            "Principal": {"CanonicalUser": PARTNER},
            "Action": "s3:ListBucket",
            "Resource": arn,
            "Condition": {
                "StringEquals": {"s3:prefix": ["shared/", "exports/"]},
                "NumericLessThanEquals": {"s3:max-keys": "1000"},
            },
        },
        {
            "Sid": "Uploads",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OWNER}:user/uploader"},
            "Action": "s3:PutObject",
            "Resource": f"{arn}/incoming/*",
            "Condition": {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
        },
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OWNER}:user/logger"},
            "Action": "s3:PutObject",
            "Resource": f"{arn}/logs/????/??/*.gz",
        },
        {
            "Sid": "Auditors",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OWNER}:user/auditor"},
            "Action": ["s3:Get*", "s3:List*"],
            "Resource": [arn, f"{arn}/*"],
        },
        {
            "Sid": "NoAnonymousWrites",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{arn}/public/*",
            "Condition": {"StringEquals": {"aws:PrincipalType": "Anonymous"}},
        },
        {
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"{arn}/public/*",
        },
    ]
    assert len(statements) == 20
    return {"Version": "2012-10-17", "Statement": statements}


def context(**extra: str) -> dict[str, tuple[str, ...]]:
    base = {
        "aws:sourceip": ("198.51.100.7",),
        "aws:securetransport": ("true",),
        "aws:currenttime": ("2026-11-30T12:00:00Z",),
        "aws:epochtime": ("1795953600",),
    }
    base.update({k: (v,) for k, v in extra.items()})
    return base


SCENARIOS = {
    "anonymous GET public/logo.png (Allow, last statement)": AccessRequest(
        ANONYMOUS, "s3:GetObject", BUCKET, "public/logo.png", OWNER, context=context()
    ),
    "team3 user GET teams/team3/doc (Allow, 7th statement)": AccessRequest(
        Principal(OWNER, "team3", "AIDATEAM3"), "s3:GetObject", BUCKET, "teams/team3/doc", OWNER, context=context()
    ),
    "partner GET shared/report.pdf (Allow, date condition)": AccessRequest(
        Principal(PARTNER, "reader", "AIDAREADER"),
        "s3:GetObject",
        BUCKET,
        "shared/report.pdf",
        OWNER,
        context=context(),
    ),
    "partner ListBucket prefix=exports/ (Allow, 2 conditions)": AccessRequest(
        Principal(PARTNER, "", ""),
        "s3:ListBucket",
        BUCKET,
        None,
        OWNER,
        context=context(**{"s3:prefix": "exports/", "s3:max-keys": "1000"}),
    ),
    "stranger GET private/x (no statement matches)": AccessRequest(
        Principal("99999999999999999999999999999999", "", ""),
        "s3:GetObject",
        BUCKET,
        "private/x",
        OWNER,
        context=context(),
    ),
    "plain HTTP GET (Deny, first statement)": AccessRequest(
        ANONYMOUS, "s3:GetObject", BUCKET, "public/logo.png", OWNER, context=context(**{"aws:securetransport": "false"})
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000, help="evaluate() calls per timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings per scenario; the best is reported")
    args = parser.parse_args()
    text = json.dumps(policy_document())
    parses = max(1, args.calls // 100)
    best = min(
        timeit.repeat(
            lambda: parse_policy(text, resource_policy=True, bucket=BUCKET),
            number=parses,
            repeat=args.repeat,
            timer=time.process_time,
        )
    )
    print(f"parse_policy, 20 statements ({len(text)} bytes): {best / parses * 1e6:.1f} µs per call")
    policy = parse_policy(text, resource_policy=True, bucket=BUCKET)
    print(f"| scenario | verdict | µs per evaluate() (best of {args.repeat} × {args.calls}) |")
    print("|---|---|---|")
    for name, request in SCENARIOS.items():
        verdict = policy.evaluate(request)
        best = min(
            timeit.repeat(
                lambda r=request: policy.evaluate(r), number=args.calls, repeat=args.repeat, timer=time.process_time
            )
        )
        print(f"| {name} | {verdict.effect} {verdict.statement} | {best / args.calls * 1e6:.2f} |")


if __name__ == "__main__":
    main()
