"""The page checked as assistive technology meets it: axe-core (Deque's accessibility checker,
vendored under tests/vendor/axe-core, MPL-2.0) injected into the real page in Debian's headless
Chromium, and the keyboard walked through the map's controls. Which findings remain, and why,
is in docs/server.md ("Accessibility")."""
from __future__ import annotations

from pathlib import Path

from tests.browser import CHROMIUM_MARKS

pytestmark = CHROMIUM_MARKS

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
#: The findings that keep someone from using the page (axe's "serious" and "critical").
BLOCKING = ("serious", "critical")

RUN_AXE = """async () => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.html.slice(0, 120)),
  }));
}"""

#: Each input of the map a visitor can reach (the layer switch's), with its name as a screen
#: reader gets it: its label's text, else its aria-label; "" when it has none.
MAP_INPUTS = """async () => {
  const names = [];
  for (const input of document.querySelectorAll("#map input, #map select, #map textarea")) {
    if (input.type === "hidden" || input.closest("[hidden]") || !input.getClientRects().length) continue;
    const label = [...(input.labels || [])].map((l) => l.innerText.trim()).join(" ");
    names.push(label || (input.getAttribute("aria-label") || "").trim());
  }
  return names;
}"""


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector(".leaflet-draw-draw-rectangle", timeout=60_000)
    page.wait_for_selector("#examples button.thumbnail-item", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#model-status').innerText.trim() !== ''",
                           timeout=60_000)
    return page


def test_axe_finds_nothing_serious_on_the_page(browser, app_url):
    page = open_page(browser, app_url)
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(RUN_AXE)
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, "\n".join(f"{v['id']} ({v['impact']}): {v['help']}\n  " +
                                   "\n  ".join(v["nodes"]) for v in blocking)
    # what the checker reads is ours: the Run button's colours and the examples' names
    run_colour = page.eval_on_selector("#run", "e => getComputedStyle(e).backgroundColor")
    assert run_colour == "rgb(194, 65, 12)"  # orange 700, 5.2:1 with white text
    names = page.eval_on_selector_all("#examples button.thumbnail-item",
                                      "bs => bs.map(b => [b.getAttribute('aria-label'), b.innerText.trim()])")
    assert names and all(label == text for label, text in names)
    page.close()


def test_every_input_of_the_map_has_a_name(browser, app_url):
    page = open_page(browser, app_url)
    names = page.evaluate(MAP_INPUTS)
    assert names and all(names), names  # the layer switch's radio buttons at least
    page.close()
