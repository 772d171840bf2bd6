"""The operator's page in a real browser on the real stack.

Services run as processes, with the real worker and the simulated receivers; the
page is opened through the gateway. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import insert, text

from heimdall.core.db import sync_engine
from heimdall.models import Acquisition
from heimdall.simulator.faults import Fault, FaultKind
from heimdall.simulator.network import RunningNetwork
from tests.support.browser import Watched, chromium, watched_page
from tests.support.processes import ManagedProcess
from tests.support.records import RECEIVERS, add_known_source, add_model, review_of
from tests.support.stack import ServiceStack, start_stack

DESKTOP = (1280, 800)
PHONE = (390, 844)
RECORDING_TIMEOUT_MS = 90_000
# Mutating endpoints require it, as in production: the operator pastes it in the page.
TOKEN = "operator-page-token"


@pytest.fixture(scope="module")
def stack(acquisition_worker: ManagedProcess) -> Iterator[ServiceStack]:
    services = start_stack({"HEIMDALL_API_TOKENS": TOKEN})
    yield services
    services.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def desktop(browser: Browser, clean_db: str, no_faults: None) -> Iterator[Watched]:
    with watched_page(browser, *DESKTOP) as watched:
        yield watched
        watched.assert_clean()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Watched]:
    with watched_page(browser, *PHONE) as watched:
        yield watched
        watched.assert_clean()


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30_000)


def enter_token(page: Page) -> None:
    page.locator(".token summary").click()
    page.locator("#token").fill(TOKEN)
    page.locator("#token-form button").click()
    expect(page.locator("#toast")).to_contain_text("Token kept")


def test_operator_records_locates_and_approves_a_session(
    stack: ServiceStack, simulator: RunningNetwork, desktop: Watched, browser: Browser
) -> None:
    page = desktop.page
    truth = simulator.state.scenario.transmitter
    add_known_source("monferrato beacon", latitude=truth.latitude, longitude=truth.longitude)
    open_page(page, stack.urls["api-gateway"] + "/")
    enter_token(page)

    # The receivers on the map and in the table, all idle.
    expect(page.locator("path.heimdall-receiver")).to_have_count(len(RECEIVERS))
    expect(page.locator("#receivers-table tbody tr")).to_have_count(len(RECEIVERS))
    expect(page.locator("#receivers-table .badge.idle")).to_have_count(len(RECEIVERS))
    expect(page.locator(".leaflet-control-scale-line")).to_be_visible()
    expect(page.locator(".graticule-label").first).to_be_visible()
    desktop.screenshot("acquire-1280x800")

    # One receiver without GPS time: its power still counts, its timing cannot.
    untimed = RECEIVERS[-1]
    simulator.state.faults[untimed] = Fault(kind=FaultKind.no_gps)

    # Start an acquisition of the known source from the form.
    form = page.locator("#acquire-form")
    form.locator("input[name=frequency_mhz]").fill("145.5")
    form.locator("input[name=duration_seconds]").fill("2")
    form.locator("select[name=known_source_id]").select_option(
        label="monferrato beacon (145.5 MHz)"
    )
    form.locator("input[name=description]").fill("browser test")
    form.locator("#start-acquisition").click()
    page.wait_for_url(re.compile(r"#/sessions/[0-9a-f-]{36}$"))
    task_id = page.url.rsplit("/", 1)[1]

    # Live state until SUCCESS, then the estimate and its ellipse on the map.
    expect(page.locator("#session-state")).to_have_attribute(
        "data-state", "SUCCESS", timeout=RECORDING_TIMEOUT_MS
    )
    expect(page.locator("path.heimdall-ellipse")).to_have_count(1, timeout=60_000)
    expect(page.locator("path.heimdall-estimate")).to_have_count(1)
    expect(page.locator("path.heimdall-known-source")).to_have_count(1)
    expect(page.locator("path.heimdall-surface").first).to_be_attached()
    expect(page.locator("#estimate-position")).to_contain_text("N")
    expect(page.locator("#measurements-table tbody tr")).to_have_count(len(RECEIVERS))
    expect(page.locator("#residuals-table tbody tr").first).to_be_visible()
    expect(page.locator("#left-out li")).to_have_count(1)
    expect(page.locator(f"#left-out li[data-station={untimed}]")).to_have_text(
        f"TDOA of {untimed}: no GPS time"
    )
    expect(page.locator("#spectra canvas[data-drawn=true]")).to_have_count(len(RECEIVERS))
    desktop.screenshot("session-1280x800")
    ellipse_box = page.locator("path.heimdall-ellipse").bounding_box()
    assert ellipse_box is not None and ellipse_box["width"] > 3 and ellipse_box["height"] > 3

    # Approve it with a comment; the decision is stored in PostgreSQL.
    page.locator("#review-reviewer").fill("playwright")
    page.locator("#review-comment").fill("clear carrier on all seven receivers")
    page.locator("#approve").click()
    expect(page.locator("#review-state")).to_contain_text("approved")
    assert review_of(task_id) == (
        "approved",
        "playwright",
        "clear carrier on all seven receivers",
    )

    # The same session on a phone: map, estimate and review all reachable.
    with watched_page(browser, *PHONE) as phone:
        open_page(phone.page, f"{stack.urls['api-gateway']}/#/sessions/{task_id}")
        expect(phone.page.locator("path.heimdall-ellipse")).to_have_count(1, timeout=30_000)
        expect(phone.page.locator("#review-state")).to_contain_text("approved")
        phone.screenshot("session-390x844")
        phone.page.locator("#review").scroll_into_view_if_needed()
        expect(phone.page.locator("#approve")).to_be_in_viewport()
        phone.screenshot("session-review-390x844")
        phone.page.locator("a[data-nav=acquire]").click()
        expect(phone.page.locator("#receivers-table tbody tr")).to_have_count(len(RECEIVERS))
        phone.page.evaluate("window.scrollTo(0, 0)")
        phone.screenshot("acquire-390x844")
        phone.assert_clean()


def add_sessions(count: int) -> None:
    """``count`` finished acquisitions, one second apart, in one statement."""
    now = datetime.now(UTC)
    rows = [
        {
            "task_id": uuid.uuid4(),
            "frequency_mhz": 145.0 + (i % 20) * 0.025,
            "duration_seconds": 2.0,
            "station_ids": list(RECEIVERS),
            "status": ("SUCCESS", "FAILED", "CANCELLED")[i % 3],
            "progress": 100.0,
            "errors": [],
            "approval": ("pending", "approved", "rejected")[i % 3] if i % 3 == 0 else "pending",
            "created_at": now - timedelta(seconds=i),
            "finished_at": now - timedelta(seconds=i),
        }
        for i in range(count)
    ]
    with sync_engine().begin() as conn:
        conn.execute(insert(Acquisition), rows)


def test_the_sessions_list_pages_through_500_sessions(
    stack: ServiceStack, desktop: Watched, browser: Browser
) -> None:
    add_sessions(500)
    page = desktop.page
    open_page(page, stack.urls["api-gateway"] + "/#/sessions")
    rows = page.locator("#sessions-table tbody tr")
    expect(rows).to_have_count(25)
    expect(page.locator("#page-range")).to_have_text("1–25 of 500")
    expect(page.locator("#page-prev")).to_be_disabled()
    desktop.screenshot("sessions-1280x800")
    page.locator("#page-next").click()
    expect(page.locator("#page-range")).to_have_text("26–50 of 500")
    expect(rows).to_have_count(25)

    # Filters narrow the list and start again from the first page.
    page.locator("#session-filters select[name=state]").select_option("FAILED")
    expect(page.locator("#page-range")).to_have_text(re.compile(r"^1–25 of 167$"))
    expect(page.locator("#sessions-table .badge.FAILED")).to_have_count(25)
    for first in range(26, 152, 25):
        page.locator("#page-next").click()
        expect(page.locator("#page-range")).to_contain_text(f"{first}–")
    expect(page.locator("#page-range")).to_have_text("151–167 of 167")
    expect(rows).to_have_count(17)
    expect(page.locator("#page-next")).to_be_disabled()

    # A row opens its session.
    first = rows.first
    task_id = first.get_attribute("data-task")
    first.click()
    page.wait_for_url(re.compile(f"#/sessions/{task_id}$"))
    expect(page.locator("#session-state")).to_have_attribute("data-state", "FAILED")

    with watched_page(browser, *PHONE) as phone:
        open_page(phone.page, stack.urls["api-gateway"] + "/#/sessions")
        expect(phone.page.locator("#sessions-table tbody tr")).to_have_count(25)
        phone.page.locator("#page-range").scroll_into_view_if_needed()
        phone.screenshot("sessions-390x844")
        phone.assert_clean()


def test_receivers_show_recording_and_failed_states(stack: ServiceStack, desktop: Watched) -> None:
    page = desktop.page
    open_page(page, stack.urls["api-gateway"] + "/")
    expect(page.locator("path.heimdall-receiver[data-state=idle]")).to_have_count(len(RECEIVERS))
    now = datetime.now(UTC)
    with sync_engine().begin() as conn:
        conn.execute(
            insert(Acquisition),
            [
                {
                    "task_id": uuid.uuid4(),
                    "frequency_mhz": 145.5,
                    "duration_seconds": 5.0,
                    "station_ids": ["genova", "milano"],
                    "status": "FAILED",
                    "progress": 100.0,
                    "errors": [{"station_id": "genova", "error": "connection refused"}],
                    "created_at": now - timedelta(minutes=2),
                    "started_at": now - timedelta(minutes=2),
                    "finished_at": now - timedelta(minutes=1),
                },
                {
                    "task_id": uuid.uuid4(),
                    "frequency_mhz": 145.5,
                    "duration_seconds": 5.0,
                    "station_ids": ["torino", "giaveno"],
                    "status": "PROGRESS",
                    "progress": 50.0,
                    "errors": [],
                    "created_at": now,
                    "started_at": now,
                    "finished_at": None,
                },
            ],
        )
    expect(page.locator("path.heimdall-receiver[data-station=genova]")).to_have_attribute(
        "data-state", "failed"
    )
    expect(page.locator("path.heimdall-receiver[data-state=recording]")).to_have_count(2)
    expect(page.locator("path.heimdall-receiver[data-state=idle]")).to_have_count(4)
    row = page.locator("#receivers-table tr[data-station=genova]")
    expect(row).to_contain_text("connection refused")
    desktop.screenshot("receivers-states-1280x800")


def test_known_sources_and_models_pages(stack: ServiceStack, desktop: Watched) -> None:
    add_model(1)
    new = add_model(2)
    page = desktop.page
    open_page(page, stack.urls["api-gateway"] + "/#/sources")
    enter_token(page)
    form = page.locator("#source-form")
    form.locator("input[name=name]").fill("superga repeater")
    form.locator("input[name=frequency_mhz]").fill("145.6")
    form.locator("input[name=latitude]").fill("45.08")
    form.locator("input[name=longitude]").fill("7.77")
    form.locator("button[type=submit]").click()
    expect(page.locator("#sources-table tbody tr")).to_have_count(1)
    expect(page.locator("#sources-table")).to_contain_text("superga repeater")
    expect(page.locator("path.heimdall-known-source")).to_have_count(1)

    page.locator("a[data-nav=models]").click()
    expect(page.locator("#models-table tbody tr")).to_have_count(2)
    page.locator(f"#models-table tr[data-model='{new}'] button").click()
    expect(page.locator(f"#models-table tr[data-model='{new}'] .badge.active")).to_be_visible()
    with sync_engine().connect() as conn:
        active = conn.execute(text("SELECT id FROM models WHERE is_active")).scalars().all()
    assert active == [new]
    desktop.screenshot("models-1280x800")


def test_the_page_is_served_by_data_ingestion_web_itself(
    stack: ServiceStack, desktop: Watched
) -> None:
    page = desktop.page
    open_page(page, stack.urls["data-ingestion-web"] + "/")
    expect(page.locator("path.heimdall-receiver")).to_have_count(len(RECEIVERS))
    page.locator("a[data-nav=sessions]").click()
    expect(page.locator("#page-range")).to_have_text("0–0 of 0")
