"""`curate demo`: run the example pipeline until it drains, print a summary, exit 0."""

from __future__ import annotations

import asyncio

import click

import curate
from curate.demo.site import DEFAULT_DOMAINS


class _SettingsError(click.ClickException):
    """Bad configuration: exit code 2, like a usage error, without a traceback."""

    exit_code = 2


@click.command()
@click.option(
    "--domains",
    type=click.IntRange(1, 1_000),
    default=DEFAULT_DOMAINS,
    show_default=True,
    help="How many generated domains to seed (3 sitemaps and 24 pages each).",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="Keep the site and the scheduler running after the summary, until Ctrl-C.",
)
def demo(domains: int, keep_running: bool) -> None:
    """Run the example pipeline: domains → sitemaps → pages, on the shared scheduler.

    Uses CURATE_DATABASE_URL, or the embedded PostgreSQL when it is unset. The demo's
    tables are created by its migrations and emptied at every start.
    """
    from curate.demo.runner import run_demo  # heavy imports, only when the demo runs

    try:
        settings = curate.CurateSettings()
        curate.configure_logging(settings.log_level, json=settings.log_json)
        asyncio.run(run_demo(settings, domains=domains, keep_running=keep_running))
    except curate.ConfigurationError as error:
        raise _SettingsError(str(error)) from None
    except (curate.DatabaseUnavailableError, TimeoutError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # connection refused, unknown host
        raise click.ClickException(
            f"cannot reach the database ({error}); check CURATE_DATABASE_URL,"
            " or unset it to use the embedded PostgreSQL"
        ) from None
