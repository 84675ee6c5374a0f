"""`lpfleet render INVENTORY HOST`: print the aiModels.json HOST gets.

This is the real file, tokens included (pipe it where it belongs, not into a log);
`--masked` replaces every token, URL credential (user:password@) and secret-looking query value with *** for
sharing. Exit 0, or 1 when the host is
unknown or its data is invalid (the problems are printed instead).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lpfleet.commands.validate import add_data_arguments, override_data
from lpfleet.spec import Problem


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("render", help="print the aiModels.json a host gets", description=__doc__)
    parser.add_argument("inventory", help="inventory file")
    parser.add_argument("host", help="host name as in the inventory")
    parser.add_argument("--masked", action="store_true",
                        help="replace tokens, URL credentials and secret query values with ***")
    add_data_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lpfleet.fleet import check_fleet
    from lpfleet.render import render_ai_models
    from lpfleet.secrets import mask, secret_values

    result = check_fleet(args.inventory, override_data(args), args.group_data)
    spec = result.specs.get(args.host)
    if spec is None:
        mine = [p for p in result.errors if not isinstance(p, Problem) or p.host == args.host]
        if not mine:
            print(f"{args.inventory}: no host named {args.host!r}", file=sys.stderr)
        for problem in mine:
            print(problem.format() if isinstance(problem, Problem) else problem, file=sys.stderr)
        return 1
    plan = result.plan  # set, with this host's NodePlan, whenever the host's spec is
    if plan is None:
        return 1
    if args.masked:  # tokens are *** already; credentials in URLs and secret-looking query values too
        sys.stdout.write(mask(render_ai_models(spec, plan.paths.template_root(spec), masked=True), secret_values(spec)))
    else:
        sys.stdout.write(plan.nodes[args.host].ai_models_json)
    return 0
