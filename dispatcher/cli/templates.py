"""`dispatcher templates preview`: a template rendered as it would be sent."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from dispatcher.config.settings import LoadedConfig


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser,
                parse_time: Callable[[str], datetime]) -> None:
    """Register `templates preview`."""
    templates = sub.add_parser("templates", parents=[common], help="preview message templates")
    actions = templates.add_subparsers(dest="templates_command", required=True,
                                       metavar="ACTION")
    shown = actions.add_parser(
        "preview", parents=[common], help="a template rendered as it would be sent",
        description="Render a template in a locale with an account's values from the store "
                    "(else sample values), through the code that sends it: a call's parts "
                    "apart, a third party's template as a third party would hear it.")
    shown.add_argument("--template", required=True, metavar="ID")
    shown.add_argument("--locale", required=True, metavar="TAG", help="e.g. en or zh-CN")
    shown.add_argument("--account", metavar="ID",
                       help="fill the placeholders from this account (default: sample values)")
    shown.add_argument("--at", type=parse_time, metavar="ISO",
                       help="the account's values as of this instant (default: now)")


async def run(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
              now: datetime) -> int:
    """Print the preview."""
    from dispatcher.contact.account_facts import facts_for, message_values, policy_of
    from dispatcher.contact.preview import (
        account_source,
        preview,
        sample_values,
        stage_using,
        template_for,
    )
    from dispatcher.service.logs import escaped
    from dispatcher.store import open_store
    from schedules.planner import days_past_due

    at = args.at or now
    policy = policy_of(config)
    template_for(policy, args.template, args.locale)  # an unknown one fails before the store
    notes: list[str] = []
    wanted: str | None = None
    if args.account is None:
        values, source = sample_values(policy, at), "sample values (docs/operations.md)"
        stage = stage_using(policy, args.template)
    else:
        async with open_store(config.store_location, create=False) as store:
            contexts = await store.contexts([args.account], at - timedelta(days=1))
        context = contexts.get(args.account)
        if context is None:
            raise ValueError(f"no account {args.account!r} in {config.store_location}")
        facts = facts_for(context)
        values = message_values(policy, facts.state, facts.home_zone, at)
        source = account_source(args.account, at)
        days = days_past_due(facts.state, at, facts.home_zone)
        in_stage = config.schedule.stage_for(days) if days else None
        stage = in_stage.name if in_stage else stage_using(policy, args.template)
        debtor = facts.state.debtor
        wanted = debtor.locale if debtor is not None else None
    shown = preview(policy, args.template, args.locale, values, source=source, now=at,
                    stage=stage)
    if args.account is not None:
        sent = shown.template.locale_for(wanted, policy.default_locale)
        if sent != shown.locale:
            notes.append(f"this account's debtor is sent the {sent} text (their locale: "
                         f"{wanted or 'none given'})")
    lines = shown.lines()
    lines[1:1] = [f"note: {note}" for note in notes]
    # A name from an event may hold control characters: shown, never acted on by the terminal.
    out.write("\n".join(escaped(line) for line in lines) + "\n")
    return 0
