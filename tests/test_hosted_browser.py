"""A hosted deployment in a real browser: sign-in through a real OpenID Connect provider, roles, any screen.

The test starts its own provider (``oidc-provider-mock``: a real OpenID Connect server whose sign-in form
takes any subject, and gives it that subject as its email), writes a Streamlit secrets file whose
``[auth]`` names it (passed with ``--secrets.files``, so the repository's own ``.streamlit`` folder is
never touched) and a settings file whose ``[access]`` gives roles by email, and starts
``streamlit run app.py`` on them. Chromium signs in through the provider's form as a labeller, grades
three documents, and the judgement store holds them under that identity; a viewer signs in and gets no
grade buttons and no upload; signing out brings the sign-in screen back.

The second test looks at the app on a 390 px phone screen (one order at a time, a picker switches
orders, the page stays short) and in dark mode, saving screenshots to ``test-artifacts/``.
"""

from __future__ import annotations

import secrets

import pytest
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Server, _wait_idle

from rerank_core.config import load_settings
from rerank_core.judgements import JudgementStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN, LABELLER, VIEWER = "ada@example.org", "lab@example.org", "vera@example.org"
VIEW = "methods=cohere&k=5"  # a hosted reranker without a key here: its column says so, fast
QUERY = "why do planes need wings to fly"


@pytest.fixture(scope="module")
def provider():
    """A real OpenID Connect provider on a free local port."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def hosted(tmp_path_factory, provider):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    pytest.importorskip("authlib", reason="Authlib is not installed (st.login needs it)")
    base = tmp_path_factory.mktemp("hosted")
    config = base / "rerank.toml"
    config.write_text(
        f'[access]\nsign_in = true\nadmins = ["{ADMIN}"]\nlabellers = ["{LABELLER}"]\n'
        'viewers = ["@example.org"]\ndefault_role = "none"\n',
        encoding="utf-8",
    )
    secrets_file = base / "secrets.toml"
    server = Server(
        base / "data",
        base,
        env={"RERANK_CONFIG": str(config), "COHERE_API_KEY": ""},
        args=("--secrets.files", str(secrets_file)),
    )
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "{server.url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(16)}"\n'
        'client_id = "rerank-playground"\n'
        'client_secret = "not-a-secret-in-tests"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _sign_in(browser, server: Server, email: str):
    """A new browser (its own cookies) signed in as ``email`` through the provider's form."""
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(server.url)
    page.get_by_text("Sign in to continue").wait_for()
    assert page.locator(".rp-colhead").count() == 0  # nothing of the app before signing in
    page.get_by_role("button", name="Sign in").click()
    page.get_by_placeholder("sub").fill(email)  # the provider's own sign-in form
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{server.url}/**")
    page.get_by_test_id("stExpandSidebarButton").click()
    page.get_by_text(f"Signed in as {email}").wait_for()
    return context, page


def _open_compare(page, server: Server) -> None:
    page.goto(f"{server.url}/?{VIEW}&q={QUERY.replace(' ', '+')}")
    page.get_by_test_id("stCaptionContainer").filter(has_text=f"Results for “{QUERY}”").first.wait_for()
    _wait_idle(page)


def test_sign_in_through_a_real_provider_grades_under_that_identity_and_a_viewer_cannot(hosted, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context, page = _sign_in(browser, hosted, LABELLER)
    assert page.get_by_text("Role labeller").count() == 1
    assert (
        page.get_by_label("Judge", exact=True).count() == 0
    )  # the identity is the sign-in, not a text field
    _open_compare(page, hosted)
    plan = {}
    for rank, grade, badge in (
        (1, "3", "3 · perfect"),
        (2, "2", "2 · relevant"),
        (3, "0", "0 · not relevant"),
    ):
        card = page.locator(f".st-key-rpcard-c0-{rank}")
        doc = card.locator(".rp-row").get_attribute("data-doc")
        card.get_by_role("radio", name=grade, exact=True).click()
        card.locator(".rp-grade").filter(has_text=badge).wait_for()
        _wait_idle(page)
        plan[doc] = int(grade)
    assert page.get_by_text(f"Judge {LABELLER} (your sign-in)").count() == 1
    page.screenshot(path=str(ARTIFACTS / "11-signed-in-labeller-graded.png"))
    corpus_id = page.url.split("corpus=")[1].split("&")[0]

    settings = load_settings(env={"RERANK_DATA_DIR": str(hosted.data_dir)})
    with JudgementStore(settings.resolved_db_url) as store:
        mine = store.judgements(corpus_id, judge=LABELLER)
        assert {j.doc_id: j.grade for j in mine} == plan
        assert set(store.judges(corpus_id)) == {
            "import",
            LABELLER,
        }  # the sample's qrels, and the three grades

    # signing out ends the provider's session too (its own confirmation form), then the sign-in screen again
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()
    page.get_by_text("Sign in to continue").wait_for()
    assert page.locator(".rp-colhead").count() == 0
    context.close()

    # a viewer: the comparison, but no grade buttons and no upload
    context, page = _sign_in(browser, hosted, VIEWER)
    assert page.get_by_text("Role viewer").count() == 1
    _open_compare(page, hosted)
    page.locator(".rp-row").nth(4).wait_for()  # the first stage's top 5 (a rerun may still be drawing them)
    assert page.locator(".rp-row").count() >= 5
    assert page.locator('[class*="st-key-lbl_grade-"]').count() == 0
    assert page.get_by_role("radio", name="3", exact=True).count() == 0
    badges = page.locator(".rp-grade").all_inner_texts()  # the labeller's grades show, as badges only
    assert sorted(badges) == ["0 · not relevant", "2 · relevant", "3 · perfect"]
    page.screenshot(path=str(ARTIFACTS / "12-signed-in-viewer.png"))
    page.get_by_role("link", name="Corpus").first.click()
    page.get_by_text("Uploading and re-chunking corpora needs the admin role").wait_for()
    assert page.locator("input[type=file]").count() == 0
    assert page.get_by_role("button", name="Load files").count() == 0
    context.close()


# -- any screen ----------------------------------------------------------------------------------------------

# four orders: two real rerankers (the packaged MiniLM) and a hosted one without a key here
MANY = "methods=bi-encoder&methods=late-interaction&methods=cohere&k=10"

VISIBLE_HEADS = """() => [...document.querySelectorAll('.rp-colhead .rp-name')]
    .filter(e => e.offsetParent !== null).map(e => e.textContent)"""
PAGE_HEIGHT = """() => Math.max(...[...document.querySelectorAll('[data-testid="stMain"], section, main, body')]
    .map(e => e.scrollHeight))"""
LUMINANCE = """(sel) => {
    const c = getComputedStyle(document.querySelector(sel));
    const rgb = (c.backgroundColor.match(/[0-9.]+/g) || [0, 0, 0]).slice(0, 3).map(Number);
    const fg = (c.color.match(/[0-9.]+/g) || [0, 0, 0]).slice(0, 3).map(Number);
    const lum = v => (0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]) / 255;
    return [lum(rgb), lum(fg)];
}"""


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The app as a laptop user runs it: no sign-in, no demo."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    base = tmp_path_factory.mktemp("plain")
    server = Server(base / "data", base, env={"COHERE_API_KEY": "", "OPENAI_API_KEY": ""})
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_a_phone_shows_one_order_at_a_time_and_dark_mode_is_readable(plain, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = phone.new_page()
    page.set_default_timeout(180_000)
    page.goto(f"{plain.url}/?{MANY}&q={QUERY.replace(' ', '+')}")
    page.get_by_test_id("stCaptionContainer").filter(has_text=f"Results for “{QUERY}”").first.wait_for()
    _wait_idle(page)
    page.get_by_label("Query").wait_for()
    page.wait_for_timeout(1000)
    assert page.locator(".rp-colhead").count() == 4  # every order is on the page...
    assert page.evaluate(VISIBLE_HEADS) == ["Bi-encoder"]  # ...one shows: the first reranker
    picker = page.locator(".st-key-rp-narrow-picker")
    assert picker.is_visible()
    height = page.evaluate(PAGE_HEIGHT)
    page.set_viewport_size({"width": 390, "height": max(844, height)})
    page.screenshot(path=str(ARTIFACTS / "13-phone-390.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    picker.get_by_role("radio", name="BM25 · first stage").click()
    page.wait_for_function(VISIBLE_HEADS.replace("() =>", "() => (") + ").join() === 'BM25 · first stage'")
    _wait_idle(page)
    assert page.evaluate(VISIBLE_HEADS) == ["BM25 · first stage"]
    assert page.locator(".rp-row").evaluate_all("rs => rs.filter(r => r.offsetParent !== null).length") == 10
    phone_height = page.evaluate(PAGE_HEIGHT)
    # the same page wider than the breakpoint: every order side by side, no picker
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.wait_for_function("() => !document.querySelector('.st-key-rp-narrow-picker')?.checkVisibility()")
    assert len(page.evaluate(VISIBLE_HEADS)) == 4
    # and on the phone without the one-order rule (what the page was before): every order stacked
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate(
        """() => document.querySelectorAll('style').forEach(
            s => { if (s.textContent.includes('max-width: 700px')) s.remove(); })"""
    )
    page.wait_for_function(VISIBLE_HEADS.replace("() =>", "() => (") + ").length === 4")
    stacked_height = page.evaluate(PAGE_HEIGHT)
    print(
        f"\npage height at 390 px: {phone_height} px one order at a time, {stacked_height} px every order stacked"
    )
    assert phone_height < 0.6 * stacked_height, (phone_height, stacked_height)
    phone.close()

    dark = browser.new_context(viewport={"width": 1400, "height": 1800}, color_scheme="dark")
    page = dark.new_page()
    page.set_default_timeout(180_000)
    page.goto(f"{plain.url}/?{MANY}&q={QUERY.replace(' ', '+')}")
    page.get_by_test_id("stCaptionContainer").filter(has_text=f"Results for “{QUERY}”").first.wait_for()
    _wait_idle(page)
    page.get_by_label("Query").wait_for()  # the widgets have drawn (not their placeholders)
    page.wait_for_timeout(1000)
    _wait_idle(page)
    page.locator(".rp-row").first.wait_for()  # a rerun may still be drawing the orders
    page.locator(".rp-chip").first.wait_for()
    app_bg, app_fg = page.evaluate(LUMINANCE, ".stApp")
    row_bg, row_fg = page.evaluate(LUMINANCE, ".rp-row")
    chip_bg, chip_fg = page.evaluate(LUMINANCE, ".rp-chip")
    assert app_bg < 0.2 and app_fg > 0.7  # Streamlit's theme follows the system...
    assert row_bg < 0.2 and row_fg > 0.7  # ...and so do the app's own rows and chips
    assert chip_bg < 0.35 and chip_fg > 0.6
    page.screenshot(path=str(ARTIFACTS / "14-dark-mode.png"))
    dark.close()
