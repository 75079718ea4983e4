"""`relay console` in headless Chromium (Debian's chromium and chromium-driver, through selenium):
every page against a `relay dev` with events, a replay whose new attempt appears, a failing
subscription recovered in bulk (dry-run count, then the send), a dead letter redriven, markup
in a body, a URL and a header shown as text, CSRF and Origin refusals that change nothing, and
the access token of a console listening beyond loopback. Screenshots go to the test's tmp dir
(`CONSOLE_SCREENSHOTS=DIR` keeps copies there)."""

import html
import json
import os
import re
import shutil
import subprocess

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import (
    accepted_id, add_github_source, add_subscription, child_env, free_port, room, send_github,
    tail, wait_until,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
XSS_BODY_MARK = "<script>alert('xss-body')</script>"
MARKUP_URL_TAIL = "ok/markup?q=<b>bold</b>"


@pytest.fixture
def browser(tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-proxy-server", "--disable-extensions",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER,
                                      log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(room(60))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    driver.shots = shots
    yield driver
    driver.quit()


def screenshot(driver, name):
    path = driver.shots / f"{name}.png"
    driver.save_screenshot(str(path))
    keep = os.environ.get("CONSOLE_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(path, os.path.join(keep, f"{name}.png"))
    return path


def no_alert(driver):
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    text = alert.text
    alert.dismiss()
    pytest.fail(f"an alert ran in the console: {text!r}")


def text_of(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def wait_page(driver, predicate, message, timeout=20.0):
    """Reloads the page until `predicate(driver)` holds."""
    def check():
        driver.refresh()
        return predicate(driver)
    return wait_until(check, timeout=timeout, interval=0.5, message=message)


def result_title(driver):
    """The title of an action's answer, once the browser has loaded it; an error page fails
    the test with its message."""
    def loaded():
        found = driver.find_elements(By.CSS_SELECTOR, "#result-title, #error-message")
        return found[0] if found else None
    element = wait_until(loaded, timeout=room(20), interval=0.2, message="the action's answer")
    if element.get_attribute("id") == "error-message":
        pytest.fail(f"the action failed: {element.text}")
    return element.text


def csrf_of(html):
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, html[:2000]
    return match.group(1)


@pytest.mark.dev(retry_schedule="1s")
def test_console_pages_and_actions_in_a_browser(dev, sink, browser, sub_secret):
    gh_secret = add_github_source(dev)
    # "down" fails its first 4 requests: both events' attempt and retry, which dead-letter.
    down = add_subscription(dev, "github", f"{sink.url}/fail/4/down", secret=sub_secret)["id"]
    markup_url = f"{sink.url}/{MARKUP_URL_TAIL}"
    healthy = dev.cli("subscriptions", "add", "--source", "github", "--url", markup_url,
                      "--events", "*", "--secret", sub_secret,
                      "--header", "X-Note: <img src=x onerror=alert('xss-header')>")["id"]
    # "parked" takes pushes only and fails both tries: its delivery waits in the DLQ.
    parked = add_subscription(dev, "github", f"{sink.url}/fail/2/parked", events="push",
                              secret=sub_secret)["id"]
    dev.cli("subscriptions", "update", parked, "--timeout", "7s")
    xss_body = json.dumps({"action": "opened", "html": XSS_BODY_MARK}).encode()
    response, _, xss_headers = send_github(dev, gh_secret, body=xss_body)
    xss_event = accepted_id(response)
    response, _, _ = send_github(dev, gh_secret, event="push",
                                 body=json.dumps({"ref": "refs/heads/main"}).encode())
    plain_event = accepted_id(response)
    for event_id, dead in ((xss_event, 1), (plain_event, 2)):
        dev.wait_attempts(event_id, lambda a, n=dead: sum(x["next"] == "dead_lettered" for x in a) == n,
                          timeout=room(30), message=f"{event_id} dead-lettered {dead} time(s)")
    sink.wait_for("/ok/markup", 2)
    console = f"{dev.url}/console"
    assert f"console: {console} (loopback only: no access token)" in open(dev.log_path).read()

    # Overview: the chart, the queues with the dead letters, the failing subscription.
    browser.get(console)
    assert browser.find_element(By.ID, "activity-chart").is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#activity-chart polyline")) == 3
    assert "2 accepted" in text_of(browser, "#last-hour")
    queues = {row.find_elements(By.TAG_NAME, "td")[0].text: row.text
              for row in browser.find_elements(By.CSS_SELECTOR, "#queues tbody tr")}
    assert set(queues) == {
        "events", "events-dlq", "deliveries", "deliveries-dlq", "failing-deliveries"
    }, queues
    assert queues["deliveries-dlq"].split()[1] == "3", queues
    assert down in text_of(browser, "#attention") and "failing since" in text_of(browser, "#attention")
    screenshot(browser, "overview")

    # Sources: counts of secrets, never a secret.
    browser.get(f"{console}/sources")
    assert "github" in text_of(browser, "#sources")
    assert gh_secret not in browser.page_source

    # Subscriptions: markup in a URL and a header name shown as text.
    browser.get(f"{console}/subscriptions")
    row = browser.find_element(By.ID, f"sub-{healthy}")
    assert markup_url in row.text
    assert text_of(browser, f"#sub-{healthy} .policy") == "default"
    assert "timeout=7s" in text_of(browser, f"#sub-{parked} .policy")
    assert not browser.find_elements(By.CSS_SELECTOR, "#subscriptions b, #subscriptions img")
    assert sub_secret not in browser.page_source
    no_alert(browser)

    # Events: newest first, filtered by subscription and state, found by delivery id.
    browser.get(f"{console}/events")
    ids = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#events a.event-link")]
    assert ids == [plain_event, xss_event]
    browser.get(f"{console}/events?subscription={down}&status=dead")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#events a.event-link")] == ids
    browser.get(f"{console}/events?type=push")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#events a.event-link")] == [plain_event]
    browser.get(f"{console}/events")
    browser.find_element(By.ID, "search-q").send_keys(xss_headers["X-GitHub-Delivery"])
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    wait_until(lambda: browser.find_elements(By.ID, "event-id"), message="the event page")
    assert text_of(browser, "#event-id") == xss_event

    # One event: the body with <script> shown as text, the attempts per subscription.
    assert XSS_BODY_MARK in text_of(browser, "#event-body")
    assert not browser.find_elements(By.CSS_SELECTOR, "#event-body script")
    no_alert(browser)
    down_attempts = browser.find_elements(By.CSS_SELECTOR, f"#timeline-{down} li.attempt")
    assert len(down_attempts) == 2 and "dead_lettered" in down_attempts[-1].text
    screenshot(browser, "event")

    # Replay to one subscription: the new attempt appears on the event's page.
    healthy_before = len(browser.find_elements(By.CSS_SELECTOR, f"#timeline-{healthy} li.attempt"))
    Select(browser.find_element(By.ID, "replay-subscription")).select_by_value(healthy)
    browser.find_element(By.ID, "replay-button").click()
    assert "replaying" in result_title(browser)
    browser.get(f"{console}/events/{xss_event}")
    wait_page(browser, lambda d: len(d.find_elements(
        By.CSS_SELECTOR, f"#timeline-{healthy} li.attempt")) == healthy_before + 1,
        "the replayed attempt on the event page")
    screenshot(browser, "event-replayed")

    # Recover: the dry-run count, then the send; the subscriber gets both events again.
    before = len(sink.received("/fail/4/down"))
    browser.get(f"{console}/recover")
    Select(browser.find_element(By.ID, "recover-subscription")).select_by_value(down)
    since = browser.find_element(By.ID, "recover-since")
    since.clear()
    since.send_keys("1h")
    browser.find_element(By.ID, "dry-run-button").click()
    wait_until(lambda: browser.find_elements(By.ID, "dry-run-count"), timeout=room(20),
               message="the dry run's count")
    assert "2 deliveries of 2 event(s)" in text_of(browser, "#dry-run-count")
    assert len(sink.received("/fail/4/down")) == before, "a dry run sends nothing"
    screenshot(browser, "recover")
    browser.find_element(By.ID, "send-button").click()
    assert "queued 2" in result_title(browser)
    got = sink.wait_for("/fail/4/down", before + 2, timeout=room(20))[before:]
    assert sorted(g["headers"]["webhook-id"] for g in got) == sorted([xss_event, plain_event])

    # Redrive: the three dead letters go back to the deliveries queue; parked's is delivered,
    # down's two were delivered by the replay already and are not sent again.
    for event_id in (xss_event, plain_event):
        dev.wait_attempts(event_id, lambda a: any(
            x["subscription_id"] == down and x["next"] == "done" for x in a),
            timeout=room(20), message=f"the replay of {event_id} logged")
    browser.get(f"{console}/recover")
    assert text_of(browser, "#dlq-deliveries") == "3"
    assert len(sink.received("/fail/2/parked")) == 2
    browser.find_element(By.ID, "redrive-deliveries").click()
    assert "redrove 3" in result_title(browser)
    parked_got = sink.wait_for("/fail/2/parked", 3, timeout=room(20))
    assert parked_got[-1]["status"] == 200 and parked_got[-1]["headers"]["webhook-id"] == plain_event
    dev.wait_attempts(plain_event, lambda a: any(
        x["subscription_id"] == parked and x["next"] == "done" for x in a),
        timeout=room(20), message="the redriven delivery logged")
    browser.get(f"{console}/recover")
    assert text_of(browser, "#dlq-deliveries") == "0"
    assert len(sink.received("/fail/4/down")) == before + 2, "delivered pairs are not sent again"

    # Live: the newest events, filled in by the script from the JSON endpoint.
    browser.get(f"{console}/live")
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#live tr.live-event")) == 2,
               timeout=room(15), message="the live view's rows")
    assert xss_event in text_of(browser, "#live")
    no_alert(browser)

    # Disable, enable, rotate: the new secret shown once, never on the list.
    browser.get(f"{console}/subscriptions")
    browser.find_element(By.CSS_SELECTOR, f"#sub-{healthy} button.disable").click()
    assert "disabled subscription" in result_title(browser)
    assert any(s["id"] == healthy and not s["enabled"] for s in dev.cli("subscriptions", "list"))
    browser.get(f"{console}/subscriptions")
    assert "disabled" in text_of(browser, f"#sub-{healthy} .health")
    browser.find_element(By.CSS_SELECTOR, f"#sub-{healthy} button.enable").click()
    assert "enabled subscription" in result_title(browser)
    assert any(s["id"] == healthy and s["enabled"] for s in dev.cli("subscriptions", "list"))
    browser.get(f"{console}/subscriptions")
    browser.find_element(By.CSS_SELECTOR, f"#sub-{healthy} button.rotate").click()
    assert "rotated the signing secret" in result_title(browser)
    new_secret = text_of(browser, "#new-secret")
    assert new_secret.startswith("whsec_")
    browser.get(f"{console}/subscriptions")
    assert new_secret not in browser.page_source

    # Errors from the core show in the page with their status.
    missing = requests.get(f"{console}/events/evt_missing", timeout=30)
    assert missing.status_code == 404 and "no event evt_missing" in missing.text
    browser.get(f"{console}/events/evt_missing")
    assert "no event evt_missing" in text_of(browser, "#error-message")


def test_actions_need_the_csrf_token_and_the_consoles_origin(dev, sink):
    add_github_source(dev)
    sub = add_subscription(dev, "github", f"{sink.url}/ok/x")["id"]
    console = f"{dev.url}/console"
    page = requests.get(f"{console}/subscriptions", timeout=30)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    csrf = csrf_of(page.text)
    action = f"{console}/subscriptions/{sub}/disable"
    own = {"Origin": dev.url}
    refused = [
        requests.post(action, data={}, headers=own, timeout=30),
        requests.post(action, data={"csrf": "0" * len(csrf)}, headers=own, timeout=30),
        requests.post(action, data={"csrf": csrf}, headers={"Origin": "http://evil.example"}, timeout=30),
        requests.post(action, data={"csrf": csrf}, timeout=30),
    ]
    assert [r.status_code for r in refused] == [403] * 4, [r.text[:300] for r in refused]
    assert all(s["enabled"] for s in dev.cli("subscriptions", "list")), "nothing changed"
    # A page asked for under another name (DNS rebinding) is refused too.
    rebound = requests.get(f"{console}/subscriptions", headers={"Host": "evil.example"}, timeout=30)
    assert rebound.status_code == 403
    done = requests.post(action, data={"csrf": csrf}, headers=own, timeout=30)
    assert done.status_code == 200, done.text
    assert not any(s["enabled"] for s in dev.cli("subscriptions", "list"))


def test_a_console_beyond_loopback_needs_its_token(dev, relay_bin, tmp_path, browser):
    add_github_source(dev)
    port = free_port()
    log = open(tmp_path / "console.log", "wb")
    proc = subprocess.Popen(
        [str(relay_bin), "console", "--listen", f"0.0.0.0:{port}", "--data-dir", str(dev.data_dir)],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=child_env(),
    )
    try:
        line = proc.stdout.readline().decode()
        match = re.search(r"(http://\S+/console\?token=([0-9a-f]{64}))", line)
        assert match, (line, tail(tmp_path / "console.log"))
        assert "access token in this URL is required" in line
        token = match.group(2)
        base = f"http://127.0.0.1:{port}/console"
        wait_until(lambda: _reachable(base), timeout=room(20), message="relay console up")
        assert requests.get(base, timeout=30).status_code == 401
        assert requests.get(f"{base}?token={'0' * 64}", timeout=30).status_code == 403
        first = requests.get(f"{base}/sources?token={token}", allow_redirects=False, timeout=30)
        assert first.status_code == 303 and first.headers["location"] == "/console/sources"
        assert "HttpOnly" in first.headers["set-cookie"]
        session = requests.Session()
        assert session.get(f"{base}/sources?token={token}", timeout=30).status_code == 200
        assert session.get(f"{base}/events", timeout=30).status_code == 200

        browser.get(f"{base}?token={token}")
        assert browser.current_url == base
        assert browser.find_element(By.ID, "queues").is_displayed()
        screenshot(browser, "overview-token")
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        log.close()


def _reachable(url):
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


def test_events_page_by_page_and_admin_errors_in_the_page(dev, sink):
    secret = add_github_source(dev)
    sub = add_subscription(dev, "github", f"{sink.url}/ok/p")["id"]
    sent = [accepted_id(send_github(dev, secret)[0]) for _ in range(27)]
    wait_until(lambda: len(dev.cli("events", "list", "--limit", "100")["events"]) == 27,
               timeout=room(30), message="27 events stored")
    console = f"{dev.url}/console"
    first = requests.get(f"{console}/events", timeout=30)
    first_ids = re.findall(r'class="event-link" href="[^"]+">(evt_[0-9a-f]+)</a>', first.text)
    assert first_ids == sent[::-1][:25]
    older = re.search(r'id="next-page" href="([^"]+)"', first.text).group(1)
    older = html.unescape(older)
    second = requests.get(f"{dev.url}{older}", timeout=30)
    assert re.findall(r'class="event-link" href="[^"]+">(evt_[0-9a-f]+)</a>', second.text) == sent[1::-1]
    assert 'id="next-page"' not in second.text

    # The core's refusals, with their message and status.
    bad = requests.get(f"{console}/events?since=yesterday-ish", timeout=30)
    assert bad.status_code == 400 and "since" in bad.text
    assert requests.get(f"{console}/events?status=dead", timeout=30).status_code == 400
    csrf = csrf_of(requests.get(f"{console}/subscriptions", timeout=30).text)
    own = {"Origin": dev.url}
    dev.cli("subscriptions", "disable", sub)
    refused = requests.post(f"{console}/events/{sent[0]}/replay", data={"csrf": csrf, "subscription": sub},
                            headers=own, timeout=30)
    assert refused.status_code == 409 and "is disabled" in refused.text, refused.text[:500]
    unknown = requests.post(f"{console}/subscriptions/sub_nope/enable", data={"csrf": csrf},
                            headers=own, timeout=30)
    assert unknown.status_code == 404 and "no subscription sub_nope" in unknown.text
    rotate = requests.post(f"{console}/subscriptions/{sub}/rotate", data={"csrf": csrf, "keep_old": "soon"},
                           headers=own, timeout=30)
    assert rotate.status_code == 400 and "whsec_" not in rotate.text
