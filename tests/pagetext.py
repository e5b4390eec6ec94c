"""What a reader sees on a page, for the Chinese tour (tests/test_tour.py): its words, and the
badges and column headers that break over lines.

Words are read from the text nodes and the visible attributes (placeholder, alt, aria-label) of
the rendered page in Chromium, leaving out what is data or code by its markup: ``<code>``,
``<pre>``, ``<kbd>``, ``<samp>`` and anything marked ``translate="no"`` (the HTML attribute that
tells translators the same: ids, names and messages the marketplace or the buyer sent). Of the
rest, a Latin word is English left on a Chinese page unless it is an identifier by its shape
(a setting's NAME, camelCase, snake_case, a path or URL, a code with digits) or one of ALLOWED.
"""

import re

# The only English words a Chinese page may show: names of products, protocols and tools, and
# units, as Huawei's own Chinese pages write them. Keep this short: a new entry needs a reason.
ALLOWED = {
    "isvapp",  # the product
    "Kit",  # 联营 Kit, as the Seller Console calls it
    "License",  # License 类商品, the Seller Console's word
    "SaaS",
    "API",
    "URL",
    "HTTPS",
    "https",
    "http",  # the protocol's name, beside https (plain http to this host only)
    "IdP",  # the tenant's identity provider, as the Kit login's pages write it
    "CSV",
    "ID",
    "IAM",
    "SKU",
    "NTP",
    "UTC",  # the zone label: UTC+8
    "MiB",
    "GiB",
    "ms",
    "Key",  # the Seller Console's name for a product's interface key, as its Chinese pages write it
    "nonce",  # G2's parameter, named in a cause
    "nginx",  # tools the pages tell to use: names, like the commands
    "chrony",
}

IDENTIFIER = re.compile(
    r"""
      https?://\S+                       # a URL
    | [\w.+-]+@[\w-]+(?:\.[\w-]+)+         # a mail address
    | `[^`]*`                            # a command in backticks
    | (?<![\w/])/[\w./<>{}:%?=&-]+        # a path
    | \b[A-Z][A-Z0-9]*(?:_[A-Z0-9*]+)+\*?  # a setting's NAME (ALERT_SMTP_*)
    | \b[0-9a-f]+(?:-[0-9a-f]+){2,}\b       # a UUID (its groups may hold no digit: ...-bacf-...)
    | \b\w*\d\w*\b                        # a code, an id, G2, 000001
    | \b[a-z]+[A-Z]\w*                    # camelCase: testFlag, orderId
    | \b[A-Z][a-z]*(?:-[A-Z][a-z]*)+\b      # an HTTP header: X-Forwarded-Proto, Content-Type
    | \b\w+(?:[._/:]\w+)+                 # snake_case, dotted, a file: fetch_order, docs/deploy.md
    """,
    re.X,
)
WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")

READ = r"""() => {
  const quiet = 'code, pre, kbd, samp, script, style, noscript, [translate="no"]';
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, parent = node.parentElement;
    if (!parent || parent.closest(quiet)) continue;
    const text = node.textContent.replace(/\s+/g, ' ').trim();
    if (text) texts.push(text);
  }
  for (const el of document.querySelectorAll('[placeholder], img[alt], [aria-label]')) {
    if (el.closest(quiet)) continue;
    for (const name of ['placeholder', 'alt', 'aria-label']) {
      const value = el.getAttribute(name);
      if (value) texts.push(value);
    }
  }
  const lines = el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
    return tops.size;
  };
  const wrapped = [...document.querySelectorAll('.badge, th')]
    .filter(el => el.offsetParent !== null && lines(el) > 1)
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className.split(' ').join('.') : '') +
                ': ' + el.textContent.trim());
  return {texts, wrapped};
}"""


def english_words(text):
    """The English words in ``text``, identifiers and ALLOWED words aside."""
    rest = IDENTIFIER.sub(" ", text)
    return [word for word in WORD.findall(rest) if word not in ALLOWED and word.strip("'’") not in ALLOWED]


def read(page):
    """{"english": {word: [text it was in]}, "wrapped": [element: text]} for the page shown now."""
    found = page.evaluate(READ)
    english = {}
    for text in found["texts"]:
        for word in english_words(text):
            english.setdefault(word, []).append(text[:120])
    return {"english": english, "wrapped": found["wrapped"]}
