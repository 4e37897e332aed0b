#!/usr/bin/env python3
"""Deterministic generator for memtui's bundled sample data set.

Produces gzip-compressed JSON Lines of *fictitious* AI answers about the
trustworthiness, reputation and security of made-up web domains, shaped like
the real workload that motivated memtui (~16,350 responses over 444 domains,
3 models x 3 prompt types, with a tail of very long answers).

Standard library only, no network, seeded ``random.Random``: the same
arguments always give the same decompressed bytes (the gzip header carries no
timestamp or file name either, so the compressed bytes are stable for a given
zlib build too).

Usage::

    python sample_data/generate.py [--out PATH] [--domains N] [--seed S]
                                   [--responses R] [--scale K] [--quiet]

Each line is one JSON object with the fields
``id``, ``domain``, ``model``, ``prompt_type`` and ``response``.
Lines are grouped by domain (all lines of a domain are contiguous) and the
domains come in a stable order.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import sys
import time
from random import Random
from typing import Iterable, Iterator

# --------------------------------------------------------------------------
# Shape of the data set
# --------------------------------------------------------------------------

DEFAULT_SEED = 1729
DEFAULT_DOMAINS = 444
DEFAULT_TOTAL = 16_350  # responses for DEFAULT_DOMAINS domains (36.8 / domain)
MIN_PER_DOMAIN = 20
MAX_PER_DOMAIN = 55
LONG_FRACTION = 0.025  # share of 1,000-4,000-word answers
REFUSAL_FRACTION = 0.003  # canned, identical refusals (exact duplicates)

MODELS = ("claude", "gpt-4o", "deepseek")
PROMPT_TYPES = ("trustworthiness", "reputation", "security")
PROMPT_ABBR = {"trustworthiness": "trust", "reputation": "rep", "security": "sec"}
COMBOS = tuple((m, p) for m in MODELS for p in PROMPT_TYPES)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "responses.jsonl.gz")

# Reference "today" for the fictitious facts, fixed for determinism.
REF_YEAR = 2024
MONTHS = ("January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December")


def total_for(domains: int) -> int:
    """Number of responses for ``domains`` domains at the reference density."""
    return round(domains * DEFAULT_TOTAL / DEFAULT_DOMAINS)


# --------------------------------------------------------------------------
# Fictitious domain names
# --------------------------------------------------------------------------

NAME_WORDS = (
    "northwind", "bluepeak", "silverline", "oakridge", "brightwater", "redfern",
    "harborview", "stonebridge", "clearpath", "greenmeadow", "ironwood", "maplecrest",
    "sunvale", "quickmart", "trueleaf", "evergate", "coralbay", "pinegrove",
    "copperfield", "westbrook", "lakeshore", "highland", "starling", "foxglove",
    "amberlight", "driftwood", "cobalt", "juniper", "larkspur", "meridian",
    "nimbus", "orchard", "pioneer", "quartz", "riverbend", "saffron", "tidewater",
    "upland", "velvet", "willow", "zenith", "alder", "birchwood", "cedarline",
    "dunmore", "elmstead", "fairhaven", "glenfield", "hollis", "kestrel",
    "linden", "marlow", "nettle", "osprey", "primrose", "rowan", "sable",
    "thistle", "umber", "vantage", "wren", "yarrow", "ashford", "brambly",
    "calloway", "delmar", "everly", "fernhill", "grayson", "hartwell",
    "kinsley", "lockhart", "mosswood", "norcross", "pemberton", "radley",
    "shelby", "thornbury", "waverly", "bellmont", "crestview", "silverfox",
    "goldleaf", "bluefin", "redwood", "sparrow", "summit", "horizon",
)

# (word used in the domain, human-readable sector)
SECTORS = (
    ("pharmacy", "online pharmacy"), ("outfitters", "outdoor gear retailer"),
    ("lending", "consumer lending service"), ("travel", "travel booking site"),
    ("wellness", "health and wellness shop"), ("electronics", "consumer electronics store"),
    ("insurance", "insurance broker"), ("crypto", "cryptocurrency exchange"),
    ("bank", "online bank"), ("realty", "real estate listing site"),
    ("tickets", "event ticket reseller"), ("pets", "pet supply store"),
    ("fashion", "fashion retailer"), ("supplements", "dietary supplement seller"),
    ("autoparts", "auto parts retailer"), ("hosting", "web hosting provider"),
    ("vpn", "VPN provider"), ("academy", "online course platform"),
    ("jobs", "job board"), ("dating", "dating platform"), ("games", "game key marketplace"),
    ("furniture", "furniture store"), ("jewelry", "jewelry shop"), ("florist", "flower delivery service"),
    ("tax", "tax preparation service"), ("legal", "online legal services firm"),
    ("clinic", "telehealth clinic"), ("charity", "charitable foundation"),
    ("news", "news and commentary site"), ("coffee", "specialty coffee roaster"),
    ("books", "online bookstore"), ("tools", "hardware and tools retailer"),
    ("rentals", "vacation rental platform"), ("payments", "payment processor"),
    ("invest", "investment advisory service"), ("shipping", "parcel forwarding service"),
    ("kitchen", "kitchenware store"), ("optics", "eyewear retailer"),
    ("solar", "solar panel installer"), ("movers", "moving company"),
    ("garden", "garden supply shop"), ("toys", "toy store"), ("wine", "wine merchant"),
    ("bikes", "bicycle shop"), ("cosmetics", "cosmetics brand"), ("print", "online print shop"),
    ("market", "online marketplace"), ("loans", "payday loan broker"),
    ("support", "tech support service"), ("software", "software vendor"),
)

DOMAIN_PATTERNS = ("{a}-{b}{tld}", "{a}{b}{tld}", "{a}-{b}{tld}", "{a}{b}{tld}",
                   "get{a}{tld}", "{a}{b}-online{tld}", "the{a}{b}{tld}", "{a}-{b}-store{tld}")
TLDS = (".com", ".com", ".com", ".com", ".com", ".net", ".org", ".io", ".co",
        ".co.uk", ".de", ".shop", ".store", ".online", ".biz", ".info", ".ca", ".com.au")


def make_domains(n: int, rng: Random) -> list[tuple[str, str, str]]:
    """Return ``n`` unique (domain, brand, sector) triples in a stable order."""
    seen: set[str] = set()
    out: list[tuple[str, str, str]] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        a = rng.choice(NAME_WORDS)
        b, sector = rng.choice(SECTORS)
        pattern = rng.choice(DOMAIN_PATTERNS)
        tld = rng.choice(TLDS)
        domain = pattern.format(a=a, b=b, tld=tld)
        if attempts > 50 * n + 1000:  # name space exhausted: disambiguate
            domain = domain.replace(tld, f"{len(out)}{tld}", 1)
        if domain in seen:
            continue
        seen.add(domain)
        brand_b = b if len(b) > 3 else b.upper()
        brand = f"{a.capitalize()} {brand_b.capitalize() if len(b) > 3 else brand_b}"
        if pattern.startswith("get"):
            brand = a.capitalize()
        out.append((domain, brand, sector))
    return out


# --------------------------------------------------------------------------
# Tiny template language: "[a|b|c]" picks one alternative, "{field}" is filled
# from the domain profile.  Templates are compiled once into token lists.
# --------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\[([^\[\]]*)\]|\{(\w+)\}")
_FIELD_RE = re.compile(r"\{(\w+)\}")


def _compile_fields(text: str) -> tuple:
    tokens: list = []
    pos = 0
    for m in _FIELD_RE.finditer(text):
        if m.start() > pos:
            tokens.append(text[pos:m.start()])
        tokens.append(("F", m.group(1)))
        pos = m.end()
    if pos < len(text):
        tokens.append(text[pos:])
    return tuple(tokens)


def compile_template(text: str) -> tuple:
    """Tokens: literal str, ("F", field) or ("A", (alternative token tuples...))."""
    tokens: list = []
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() > pos:
            tokens.append(text[pos:m.start()])
        if m.group(1) is not None:
            tokens.append(("A", tuple(_compile_fields(alt) for alt in m.group(1).split("|"))))
        else:
            tokens.append(("F", m.group(2)))
        pos = m.end()
    if pos < len(text):
        tokens.append(text[pos:])
    return tuple(tokens)


def _compile_all(obj):
    if isinstance(obj, str):
        return compile_template(obj)
    if isinstance(obj, dict):
        return {k: _compile_all(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_compile_all(v) for v in obj]
    raise TypeError(type(obj))


def render(tpl: tuple, ctx: dict, rng: Random) -> str:
    out: list[str] = []
    _render_into(tpl, ctx, rng, out)
    return "".join(out)


def _render_into(tpl: tuple, ctx: dict, rng: Random, out: list) -> None:
    for tok in tpl:
        if tok.__class__ is str:
            out.append(tok)
        elif tok[0] == "F":
            out.append(ctx[tok[1]])
        else:
            _render_into(rng.choice(tok[1]), ctx, rng, out)


# --------------------------------------------------------------------------
# Text material
# --------------------------------------------------------------------------

TOPIC_LABELS = {
    "tls": "SSL/TLS certificate", "whois": "Domain age (WHOIS)", "reviews": "Customer reviews",
    "complaints": "Complaints", "phishing": "Phishing and blocklists",
    "registration": "Business registration", "privacy": "Privacy policy",
    "contact": "Contact information", "hosting": "Hosting and infrastructure",
    "email": "Email authentication", "headers": "Security headers",
    "cms": "Platform and software", "payment": "Payment methods",
    "social": "Social media presence", "news": "Press coverage", "pricing": "Pricing",
}

PROMPT_TOPICS = {
    "trustworthiness": ("whois", "tls", "registration", "contact", "privacy", "reviews",
                        "payment", "pricing", "phishing", "complaints", "social", "hosting"),
    "reputation": ("reviews", "complaints", "social", "news", "whois", "registration",
                   "phishing", "contact", "pricing", "payment", "privacy"),
    "security": ("tls", "headers", "email", "phishing", "cms", "hosting", "privacy",
                 "whois", "payment", "registration"),
}

# FACTS[topic][state] -> templates stating what was (fictitiously) observed.
FACTS = {
    "tls": {
        "good": [
            "{domain} serves a valid certificate issued by {issuer}, negotiates {tls_ver}, and [sends an HSTS header|enforces HSTS|redirects all plain HTTP traffic to HTTPS with HSTS enabled].",
            "The TLS setup [looks solid|is in good shape|is well configured]: a {issuer} certificate valid until {cert_expiry}, {tls_ver} support, and HSTS [with a one-year max-age|with includeSubDomains|preloaded in major browsers].",
            "HTTPS is [properly|correctly|cleanly] configured on {domain}; the certificate chain from {issuer} validates and older protocol versions such as TLS 1.0 and 1.1 are [disabled|refused].",
        ],
        "ok": [
            "{domain} has a valid {issuer} certificate, but [it only offers|the server tops out at] {tls_ver} and there is no HSTS header, so a first visit over plain HTTP [could be intercepted|is not protected].",
            "The certificate ({issuer}, expiring {cert_expiry}) is valid, though the configuration is [basic|only adequate|fairly minimal]: no HSTS and [weak legacy cipher suites still enabled|no OCSP stapling].",
            "Encryption is present but not exemplary: {domain} uses a [free|domain-validated] {issuer} certificate and does not [set|send] Strict-Transport-Security.",
        ],
        "bad": [
            "The certificate presented by {domain} [expired on {cert_expiry}|does not match the hostname|is self-signed], which browsers will flag with a [full-page warning|security interstitial].",
            "TLS is a [real|serious] concern here: {domain} [serves an invalid certificate|has a broken certificate chain|still accepts TLS 1.0] and [mixed content loads over plain HTTP|the checkout page is not consistently served over HTTPS].",
            "Visitors to {domain} will [likely|probably] see a certificate error, because the {issuer} certificate on the site [has lapsed|was issued for a different hostname].",
        ],
    },
    "whois": {
        "old": [
            "WHOIS records show {domain} was registered in {created}, so it has been online for {age_phrase}, [which is a reassuring sign|which counts in its favour|a history that scam sites rarely have].",
            "The domain is [well established|long-lived|mature]: first registered {age_phrase} ago through {registrar}, and renewed [several years in advance|consistently ever since].",
            "{domain} has a registration history going back to {created} with {registrar}, [and ownership does not appear to have changed hands|with no sign of a recent transfer].",
        ],
        "mid": [
            "According to WHOIS, {domain} was registered in {created} ({age_phrase} ago) through {registrar}; [not brand new, but not long established either|old enough to have some track record]{privacy_clause}.",
            "The domain has existed for {age_phrase} (registered with {registrar} in {created}), [which is moderate|a middling age]{privacy_clause}.",
        ],
        "new": [
            "{domain} is [very new|a recently registered domain]: WHOIS shows it was created in {created}, only {age_phrase} ago, via {registrar}{privacy_clause}.",
            "The domain was registered just {age_phrase} ago ({created}){privacy_clause}, [which is a common trait of short-lived scam sites|and young domains are heavily over-represented among fraudulent shops|so there is little history to judge it by].",
        ],
    },
    "reviews": {
        "positive": [
            "On {review_site}, {brand} holds an average of {rating} out of 5 from {review_count} reviews, [with most customers praising|and recurring themes include] [fast delivery and responsive support|accurate product descriptions|easy returns].",
            "Customer feedback is [largely|mostly|broadly] positive: {rating}/5 across {review_count} reviews on {review_site}, and the company [replies to negative reviews publicly|appears to resolve complaints it receives].",
            "{brand} has a healthy review profile ({rating} stars, {review_count} reviews on {review_site}), [and the reviews are spread over several years rather than clustered in a few weeks|with a natural mix of detailed and short reviews]."
        ],
        "mixed": [
            "Reviews are mixed: {review_site} shows {rating}/5 from {review_count} reviews, with [praise for prices but complaints about {theme1}|satisfied buyers alongside a steady stream of reports about {theme1}].",
            "{brand} sits at {rating} out of 5 on {review_site} ({review_count} reviews); [the negative ones mostly mention {theme1}|a noticeable share of one-star reviews cite {theme1}].",
            "The review picture for {domain} is [uneven|inconsistent]: a {rating} average on {review_site}, [and some of the five-star reviews look generic or were posted in bursts|with recent reviews trending worse than older ones].",
        ],
        "negative": [
            "Reviews are [poor|largely negative]: {brand} averages {rating}/5 on {review_site} from {review_count} reviews, and [many|most] describe {theme1} and {theme2}.",
            "{review_site} shows a {rating}-star average for {domain}, with reviewers [repeatedly|frequently] reporting {theme1}; [several say they never received their order|some mention chargebacks through their bank].",
            "The customer reviews that exist are [strongly|overwhelmingly] negative ({rating}/5, {review_count} reviews), centred on {theme1}.",
        ],
        "few": [
            "There are very few independent reviews of {brand}: [only {review_count} on {review_site}|just {review_count} reviews on {review_site}], [too few to draw firm conclusions|which is not enough to establish a track record].",
            "{domain} has almost no review footprint ({review_count} reviews on {review_site}, averaging {rating}), [so reputation is essentially unknown|which is unusual for {a_sector} that claims a large customer base].",
        ],
    },
    "complaints": {
        "none": [
            "I am not aware of formal complaints against {brand}; [there are no consumer-protection warnings|no regulator warnings] or [clusters of scam reports|threads on scam-reporting forums] associated with {domain}.",
            "Complaint databases do not show a pattern of problems with {domain}; [the handful of issues raised were answered by the company|nothing suggests systematic non-delivery or billing abuse].",
        ],
        "some": [
            "There are {complaint_count} complaints on file [with consumer-protection bodies|on complaint boards], mostly about {theme1}; [most appear to have been resolved|the company responded to some of them].",
            "A moderate number of complaints ({complaint_count}) mention {brand}, typically concerning {theme1} or {theme2}, [which is not unusual for {a_sector} of this size|which is worth keeping in mind].",
        ],
        "many": [
            "{brand} has attracted [a large number of|many] complaints ({complaint_count} and counting), [predominantly|overwhelmingly] about {theme1} and {theme2}, [and most remain unresolved|with little evidence of responses from the company].",
            "Complaint volume is [high|a red flag]: {complaint_count} reports reference {domain}, and the common thread is {theme1}.",
        ],
    },
    "phishing": {
        "clean": [
            "{domain} does not appear on [common|major] blocklists such as {blocklist}, and I found no phishing reports tied to it.",
            "Threat-intelligence feeds [show nothing against|are clean for] {domain}: no phishing, malware or spam listings at the time of the data I have.",
            "No blocklist hits for {domain} ({blocklist} and similar feeds report it as clean).",
        ],
        "reported": [
            "{domain} has been [flagged|reported] {phish_count} times for phishing, and it is listed on {blocklist}; [browsers may show a deceptive-site warning|some security products block it outright].",
            "There are {phish_count} phishing reports associated with {domain}, [including lookalike login pages|mostly involving fake payment pages|some involving credential harvesting], and it appears on {blocklist}.",
            "Security vendors have [listed|flagged] {domain} ({blocklist}; {phish_count} reports), [which is a serious warning sign|which on its own is reason to avoid entering credentials there].",
        ],
    },
    "registration": {
        "found": [
            "{brand} appears in the {reg_body} as a registered company (number {reg_number}), and the registered address [matches|is consistent with] the one on the website.",
            "The operating business is registered with the {reg_body} (company no. {reg_number}) in {country}, [and filings appear to be up to date|with accounts filed on time].",
        ],
        "notfound": [
            "I could not match {brand} to an entry in the {reg_body}, and the site [does not list a company number|lists a registration number that does not resolve].",
            "There is no verifiable business registration behind {domain}: [no company name, no registration number, no VAT ID|the legal notice names a company that cannot be found in the {reg_body}].",
        ],
    },
    "privacy": {
        "good": [
            "The privacy policy is [detailed|thorough], last updated in {policy_year}, [names a data controller and a contact for data requests|explains retention periods and lists third-party processors], and references {privacy_law}.",
            "{domain} publishes a privacy policy that [covers cookies, data sharing and user rights|addresses {privacy_law} rights explicitly], updated in {policy_year}.",
        ],
        "weak": [
            "A privacy policy exists but is [generic|boilerplate|thin]; it was last updated in {policy_year} and [does not name a data controller|does not say which third parties receive data|appears copied from a template].",
            "The privacy policy on {domain} is [vague|minimal] and dated {policy_year}, [with no mention of {privacy_law}|with broad language allowing data to be shared with 'partners'].",
        ],
        "missing": [
            "I could not find a privacy policy on {domain}, [which is a compliance problem for any site that collects personal data|even though the site collects names, addresses and payment details].",
            "{domain} has no [accessible|working] privacy policy — the footer link [returns a 404|points to a placeholder page].",
        ],
    },
    "contact": {
        "full": [
            "Contact details are complete: a physical address in {country}, a phone number, and a support email on the {domain} domain.",
            "{brand} lists a street address, a staffed phone line and [live chat|a ticketing system], which [legitimate businesses usually provide|makes it easier to resolve problems].",
        ],
        "partial": [
            "Contact information is [limited|partial]: [only a web form and an email address|an email address but no phone number or street address] are provided.",
            "The site gives a support email but [no physical address|only a P.O. box] for {brand}.",
        ],
        "none": [
            "There is [essentially|practically] no contact information on {domain} beyond [a contact form|a generic webmail address], [a common trait of fly-by-night stores|which makes disputes hard to pursue].",
            "{domain} lists no address, phone number or company name, [only a form|only a Telegram handle], which is a significant red flag.",
        ],
    },
    "hosting": {
        "cdn": [
            "{domain} is served through {host}, [which hides the origin server but is normal for legitimate sites|a common, reputable CDN setup].",
            "Infrastructure-wise, the site sits behind {host} with [IPv6 and HTTP/2 enabled|a modern edge configuration].",
        ],
        "cloud": [
            "The site is hosted on {host} in {country}, [a mainstream provider|which is unremarkable].",
            "{domain} resolves to {host} infrastructure, [with no shared hosting neighbours of concern|on dedicated cloud instances].",
        ],
        "shared": [
            "{domain} is on [low-cost|bulk] shared hosting ({host}) alongside [hundreds of other sites|several domains with poor reputations], [which does not prove anything but is common among throwaway stores|which is typical of hastily built sites].",
            "The hosting is a [budget|cheap] shared server at {host}; the same IP also serves [a number of recently registered shops|other sites flagged for fraud].",
        ],
    },
    "email": {
        "full": [
            "Email authentication is [properly|fully] set up for {domain}: SPF, DKIM and a DMARC policy of p={dmarc}.",
            "{domain} publishes SPF and DKIM records and enforces DMARC (p={dmarc}), [which makes spoofing its email much harder|so phishing emails that impersonate it are more likely to be rejected].",
        ],
        "partial": [
            "{domain} has an SPF record but [DMARC is set to p=none|no DMARC record], so [spoofed emails claiming to come from it may still be delivered|impersonation remains possible].",
            "Email security is partial: SPF is present, [DKIM could not be confirmed|DKIM is set up], and DMARC is [missing|monitoring-only].",
        ],
        "none": [
            "{domain} publishes no SPF, DKIM or DMARC records, [so anyone can send mail that appears to come from it|which leaves it wide open to email spoofing].",
            "There is no email authentication at all on {domain} ([no SPF|SPF missing], no DMARC).",
        ],
    },
    "headers": {
        "strong": [
            "Security headers are [in good shape|well configured]: a Content-Security-Policy, X-Frame-Options, X-Content-Type-Options and a strict Referrer-Policy are all present.",
            "{domain} scores well on HTTP security headers, [including a restrictive Content-Security-Policy|with CSP, frame protections and a Permissions-Policy].",
        ],
        "weak": [
            "Several recommended security headers are missing from {domain} ([no Content-Security-Policy|no CSP], [no X-Frame-Options|no clickjacking protection]), [which is common but leaves room for improvement|increasing exposure to XSS and clickjacking].",
            "The HTTP response headers are [minimal|bare]: [the server version string is exposed|the server banner reveals {server}] and there is no CSP.",
        ],
    },
    "cms": {
        "current": [
            "{domain} runs on {cms}, and the version [appears current|looks up to date], with no known-vulnerable plugins detected.",
            "The site is built on {cms}; [I saw no outdated components|fingerprinted components are patched]."
        ],
        "outdated": [
            "{domain} appears to run an outdated {cms} installation [with plugins that have published CVEs|several releases behind the current version], [which is a common entry point for attackers|which raises the risk of compromise].",
            "The {cms} build on {domain} is [old|out of date] and exposes [a login page at the default path|a readable changelog revealing the version].",
        ],
        "unknown": [
            "The underlying platform of {domain} is [not identifiable|custom], [so its patch level cannot be assessed from the outside|which neither helps nor hurts the assessment].",
        ],
    },
    "payment": {
        "standard": [
            "Checkout on {domain} uses {payment1} and {payment2}, [both of which offer buyer protection|which allow chargebacks if something goes wrong].",
            "{brand} accepts mainstream payment methods ({payment1}, {payment2}) through a [hosted|PCI-compliant] payment page.",
        ],
        "risky": [
            "{domain} [pushes|strongly encourages] payment by {payment1} or {payment2}, [methods that offer no buyer protection|which are almost impossible to reverse], a classic scam pattern.",
            "Card payments [fail or are 'temporarily unavailable'|are not offered], leaving only {payment1} or {payment2}, [which should make you wary|which is a major warning sign].",
        ],
    },
    "social": {
        "active": [
            "{brand} has an active social media presence ({followers} followers) with [regular posts and genuine-looking customer interaction|a history of posts going back several years].",
            "The company's social accounts are [established|active] and link back to {domain}, [with comments that look organic|and customers use them to raise support issues].",
        ],
        "sparse": [
            "Social media presence is [thin|nearly non-existent]: [the linked accounts have few followers and no recent posts|the social icons in the footer link to generic pages].",
            "{brand}'s social profiles [were created recently|show only {followers} followers] and [contain mostly stock images|have comments disabled].",
        ],
    },
    "news": {
        "covered": [
            "{brand} has been mentioned in {outlet}, [mostly in neutral or positive terms|including a profile of the company's founders].",
            "There is independent press coverage of {brand} ({outlet}), [which adds some credibility|which helps confirm it is a real operation]."
        ],
        "none": [
            "I found no independent news coverage of {brand}, [which is normal for a small business but means there is no outside validation|so its claims cannot be cross-checked].",
            "{domain} has no press footprint [beyond its own blog|apart from paid press releases], [so reputation rests on reviews alone|which limits what can be verified]."
        ],
        "negative": [
            "{brand} has appeared in {outlet} [in connection with customer complaints|in a report on online shopping scams|in a consumer-protection warning].",
        ],
    },
    "pricing": {
        "normal": [
            "Prices on {domain} are [in line with|comparable to] other {sector_plural}, [with no implausible discounts|which is what you would expect from a genuine seller].",
        ],
        "toogood": [
            "Prices on {domain} are [suspiciously|unrealistically] low — discounts of up to {discount} on [branded goods|items that are sold out elsewhere] — [a hallmark of counterfeit or non-delivery scams|which is the most common lure used by fake stores].",
            "{brand} advertises permanent '{discount} off' sales and countdown timers, [classic pressure tactics|a pattern typical of dropshipping or fake shops].",
        ],
    },
}

# General explanations per topic, used to pad answers realistically.
EXPLAIN = {
    "tls": [
        "[Keep in mind that|Remember that|Note that] a padlock only means the connection is encrypted; it says nothing about whether the business behind {domain} is honest.",
        "Free certificates from Let's Encrypt are [perfectly fine|entirely legitimate] and used by millions of sites, so the issuer alone [should not|does not] count against a site.",
        "HSTS tells browsers to always use HTTPS for a domain, which [protects against downgrade attacks on public Wi-Fi|prevents SSL-stripping attacks].",
        "Certificate transparency logs can show [when certificates were issued for a domain|whether lookalike domains have obtained certificates], which is a useful cross-check.",
        "An expired or mismatched certificate [is sometimes just negligence|can simply mean poor maintenance], but for a site that handles payments it is [hard to excuse|a serious lapse].",
        "Modern configurations disable TLS 1.0 and 1.1 and prefer forward-secret cipher suites; [tools like SSL Labs grade this quickly|a quick SSL Labs scan will show the details].",
    ],
    "whois": [
        "Domain age is [one of the strongest single predictors|a strong single predictor] of legitimacy: most fraudulent shops are [taken down|abandoned] within months of registration.",
        "WHOIS privacy is [common and not suspicious in itself|standard practice nowadays], especially since GDPR redacted most registrant data.",
        "[A domain that was recently transferred or re-registered|An expired domain that was re-registered] can inherit an old creation date's credibility without the history to match, [so check archived snapshots too|so the Wayback Machine is worth a look].",
        "Registering a domain for many years in advance suggests [long-term intent|a business planning to stay], whereas one-year registrations are typical of disposable sites.",
        "Archived copies of {domain} on the Wayback Machine can show [whether the site has always sold the same products|whether the business changed direction abruptly].",
    ],
    "reviews": [
        "Review platforms [filter|try to filter] fake reviews, but [bursts of five-star reviews from new accounts|reviews that all use similar wording] are still worth treating with suspicion.",
        "It is worth reading the [most recent|lowest-rated] reviews rather than the average, because [ownership changes|a sudden decline in service] show up there first.",
        "Some merchants invite only satisfied customers to leave reviews, which [inflates averages|skews the rating upward], so compare several platforms.",
        "Testimonials hosted on {domain} itself [carry little weight|cannot be independently verified], unlike reviews on third-party platforms.",
        "[A rating of around 4 with many reviews|A large volume of moderately positive reviews] is usually more trustworthy than a perfect 5.0 from a handful of reviewers.",
    ],
    "complaints": [
        "The number of complaints matters less than [how they are handled|whether the company responds and resolves them]; every large retailer collects some.",
        "Consumer-protection agencies and complaint boards [are a good source|give useful signal], particularly when the same issue — such as {theme1} — recurs.",
        "[Complaints about subscription traps and hidden fees|Reports of unexpected recurring charges] are a specific pattern worth checking before you enter card details.",
        "If you do run into problems, [a chargeback through your card issuer|disputing the charge with your bank] is usually the most effective remedy.",
    ],
    "phishing": [
        "Phishing kits are often hosted on [compromised legitimate sites|newly registered lookalike domains], so a blocklist hit [can be temporary|may reflect a past compromise].",
        "You can check a URL yourself with [Google Safe Browsing's site status tool|VirusTotal|URLhaus] before entering any credentials.",
        "[Lookalike domains|Typosquatted variants] of well-known brands are a common phishing vector; compare the address bar carefully against the official domain.",
        "Blocklists are [reactive|updated after the fact], so a clean result is reassuring but [not a guarantee|does not prove a site is safe].",
    ],
    "registration": [
        "A registered company with filed accounts is [harder to disappear with customers' money|accountable in a way an anonymous storefront is not].",
        "You can verify a registration number yourself in the {reg_body}; [scam sites often reuse numbers belonging to unrelated firms|fraudulent sites sometimes copy a real company's details].",
        "[Many legitimate small sellers operate as sole traders|Not every small shop is incorporated], so a missing registration is a weaker signal than a fake one.",
    ],
    "privacy": [
        "Under {privacy_law}, you have the right to ask what data a company holds about you and to request deletion.",
        "A privacy policy copied from a template, [sometimes still naming another company|often with placeholder text], is a sign of a hastily assembled site.",
        "[The trackers that load on the page|Cookie banners that offer no real choice] can tell you as much about data practices as the policy itself.",
        "A good policy states [how long data is kept|how long personal data is retained] and [how to contact a data protection officer|how to exercise your rights].",
        "Sites that [sell|share] customer data with advertising partners are not necessarily fraudulent, but [you should know before you sign up|it is worth knowing before you create an account].",
    ],
    "contact": [
        "Legitimate businesses generally make it easy to reach them; [a verifiable street address|a working phone number] is a basic trust signal.",
        "[You can look the listed address up on a map to see whether it is a real office, a residential flat or a virtual-office provider.|A quick search of the address will show whether it is a real office, a residential flat or a virtual-office provider.|Looking the address up on a map shows whether it is a real office or just a mail-forwarding service.]",
        "A phone number that [goes straight to voicemail|is never answered] is only marginally better than no phone number at all.",
        "Support emails on free webmail providers rather than the company's own domain [are a weak but real warning sign|suggest a less established operation].",
    ],
    "hosting": [
        "CDNs like Cloudflare are used by legitimate and fraudulent sites alike, so [they neither add nor remove trust|their presence is neutral].",
        "Shared hosting is normal for small businesses; what matters is [what else lives on the same IP|whether neighbouring sites are flagged].",
        "[Reverse-IP lookups|Passive DNS records] can reveal networks of near-identical shops run by the same operators.",
        "Hosting location matters mostly for legal recourse: [a provider in a jurisdiction that ignores abuse reports|an offshore host that ignores takedown requests] is a warning sign.",
    ],
    "email": [
        "SPF, DKIM and DMARC mainly protect [other people|recipients] from spoofed mail; they say little about the site's honesty, but [a lot about its operational maturity|they do reflect technical diligence].",
        "A DMARC policy of p=reject or p=quarantine [instructs receiving servers to block spoofed messages|makes impersonation significantly harder].",
        "Missing email authentication is [especially relevant for banks and payment services|a bigger concern for financial services], whose customers are prime phishing targets.",
    ],
    "headers": [
        "Security headers are [a low-cost hardening measure|easy wins for site operators]; their absence is [common|widespread] even on legitimate sites.",
        "A well-written Content-Security-Policy [limits the damage of cross-site scripting|prevents injected scripts such as card skimmers from loading].",
        "[Web skimming attacks (Magecart)|Injected payment skimmers] target checkout pages, which is why CSP and Subresource Integrity matter for shops.",
    ],
    "cms": [
        "Outdated CMS installations and plugins are [among the most common causes|a leading cause] of website compromise.",
        "Even a legitimate shop running {cms} can be [compromised and serve malicious scripts|hacked to host phishing pages] if it falls behind on updates.",
        "[Automatic updates|A managed hosting plan with automatic patching] removes most of this risk, but many small shops never enable it.",
    ],
    "payment": [
        "Credit cards and PayPal offer [dispute and chargeback rights|buyer-protection schemes]; bank transfers, gift cards and cryptocurrency [generally do not|are effectively irreversible].",
        "[Always check that the payment page is on a reputable processor's domain|Look at the address bar when you reach the payment step], not a lookalike.",
        "A site that asks you to pay [by gift card|via a personal bank account|through a messaging app] should be treated as fraudulent.",
    ],
    "social": [
        "Follower counts are [easy to buy|trivial to inflate], so engagement and account age matter more than raw numbers.",
        "[Genuine customer questions in the comments|Real interaction with customers] is a better signal than the number of followers.",
        "Scam stores often [advertise heavily on social platforms while having no organic following|run short-lived ad campaigns from freshly created pages].",
    ],
    "news": [
        "Press releases published through wire services are [paid placements|not independent coverage] and should not be confused with journalism.",
        "Independent coverage [is rare for small businesses|is not expected for every shop], so its absence is a weak signal on its own.",
        "Logos of well-known publications shown on a site ('as seen in ...') [are easy to fake|often link nowhere], so check that the articles actually exist.",
    ],
    "pricing": [
        "If a deal looks [too good to be true|implausibly generous], it usually is — especially for [high-demand electronics|designer goods|popular sneakers].",
        "Countdown timers and 'only 2 left' banners are [pressure tactics|manufactured urgency] designed to stop you from doing exactly this kind of research.",
        "Comparing prices with [two or three established {sector_plural}|well-known competitors] is a quick way to spot an implausible offer.",
    ],
}

ADVICE = [
    "[Pay with a credit card or PayPal|Use a payment method with buyer protection] rather than a bank transfer.",
    "Verify the company registration number in the official {reg_body}.",
    "[Search for|Look up] '{brand} scam' and '{brand} reviews' on several independent sites before ordering.",
    "Check the domain on [VirusTotal|Google Safe Browsing|URLhaus] before entering credentials.",
    "Start with a [small|low-value] order to test delivery and support.",
    "Look at archived versions of {domain} on the Wayback Machine to see how long the business has operated.",
    "[Read the returns and refund policy carefully|Make sure the refund policy is clear] before paying.",
    "[Avoid reusing passwords|Use a unique password] for your account on {domain}.",
    "[Contact their support before ordering|Send a question to their support address] and see whether and how they respond.",
    "Keep screenshots of the order confirmation and any correspondence in case you need to dispute the charge.",
    "Do not click links in emails that claim to come from {domain}; type the address yourself.",
    "[Enable two-factor authentication|Turn on 2FA] if {domain} offers it.",
]

HEDGES = [
    "I can't verify this in real time, so treat it as a starting point rather than a definitive finding.",
    "That said, [this kind of signal can change quickly|details like these change over time], so it is worth re-checking.",
    "I'd [weigh|treat] this as one signal among several rather than as conclusive.",
    "[Of course|Admittedly], none of these checks is decisive on its own.",
    "My information may be out of date, [and I may be missing recent developments|so please confirm against current sources].",
    "It's possible that [there is an innocent explanation|the operators simply haven't got around to fixing this].",
    "[I want to be careful not to overstate this|I don't want to overstate this]: absence of evidence is not evidence of a problem.",
]

OPENERS = {
    "claude": [
        "I can't browse the web or check {domain} live, but I can walk through the signals that usually matter for {a_sector} like this one.",
        "Here's my assessment of {domain}, with the caveat that I don't have real-time access to the site and some details may have changed.",
        "[Good question|That's a sensible thing to check]. Based on the information available to me about {domain}, here is how it looks.",
        "Assessing the {ptype} of {domain} involves several independent signals, and I'll go through the ones I can speak to.",
        "I'll give you my honest read on {domain}, though I'd encourage you to verify the key points yourself.",
    ],
    "gpt-4o": [
        "Here's a [breakdown|structured overview] of the {ptype} of **{domain}**:",
        "Below is an assessment of **{domain}** ({brand}), {a_sector}, based on commonly used {ptype} indicators.",
        "Let's [look at|evaluate] **{domain}** across the key {ptype} signals.",
    ],
    "deepseek": [
        "**{domain}** — {ptype} assessment.",
        "{domain} ({sector}).",
        "Assessment of {domain}:",
    ],
}

VERDICTS = {
    "low": [
        "Overall, {domain} [appears to be|looks like] a legitimate {sector} with [a low|a fairly low] risk profile.",
        "On balance, {brand} [seems trustworthy|comes across as a genuine business], and I would consider it [reasonably safe|low risk] to use.",
        "My overall read is positive: {domain} shows the signs of an established, [legitimate|genuine] operation.",
    ],
    "moderate": [
        "Overall, {domain} shows [mixed signals|a mix of reassuring and concerning signs]; it is [probably legitimate|not obviously a scam] but [caution is warranted|I would proceed carefully].",
        "On balance I would rate {brand} as moderate risk: [nothing conclusive points to fraud|there is no smoking gun], but several trust signals are missing.",
        "{domain} [falls into a grey zone|is hard to classify]: possibly a legitimate but poorly run {sector}, possibly something less benign.",
    ],
    "high": [
        "Overall, {domain} has [several|multiple] hallmarks of a [fraudulent|scam] site, and I would [avoid it|not recommend using it].",
        "On balance, {brand} looks high risk; I would not [enter payment details|share personal information] on {domain}.",
        "My assessment is negative: the combination of red flags on {domain} is [typical of|consistent with] [fake shops|phishing operations|non-delivery scams].",
    ],
}

TIER_SHORT = {
    "low": ("Likely legitimate", "Low risk", "Trustworthy"),
    "moderate": ("Mixed signals", "Moderate risk", "Use caution"),
    "high": ("Likely unsafe", "High risk", "Avoid"),
}

GENERAL_EXPLAIN = [
    "Scam shops in the {sector} space [often copy|frequently clone] the design of legitimate competitors, so a professional look is not a reliable signal.",
    "No single indicator is conclusive; [it is the combination of signals|it is the overall pattern] that matters.",
    "Fraudulent sites tend to [cluster|appear in waves] around holidays and major sales events, when shoppers are less careful.",
    "Legitimate {sector_plural} usually have a [traceable history|verifiable footprint] across registries, reviews and archived versions of their site.",
    "[Automated scanners|Reputation services] such as ScamAdviser or URLVoid aggregate many of these signals, but their scores are heuristics rather than verdicts.",
    "Sites that [change their name frequently|redirect through several domains] are harder to hold accountable and should be treated with extra care.",
    "The absence of red flags is [encouraging|a good sign] but not proof; a well-run scam can look clean for a few weeks.",
    "If you have already paid and suspect fraud, [contact your bank immediately|report it to your card issuer right away] and keep all records.",
]

FAQ = [
    ("Is {domain} a scam?", "verdict"),
    ("Is it safe to enter my card details on {domain}?", "payment"),
    ("Why does my browser show a warning for {domain}?", "tls"),
    ("How old is {domain}?", "whois"),
    ("Who runs {domain}?", "registration"),
    ("What do customers say about {brand}?", "reviews"),
    ("Has {domain} been involved in phishing?", "phishing"),
    ("What happens to my data on {domain}?", "privacy"),
]

REFUSALS = (
    "I don't have enough information about this domain to assess it.",
    "I'm sorry, but I can't provide a reliable assessment of this website without access to current data about it.",
    "I can't browse the internet, so I'm unable to check this domain's current status. Please consult a reputable URL scanner or review site.",
    "Insufficient data to evaluate this domain.",
)

# Compile everything once.
C_FACTS = _compile_all(FACTS)
C_EXPLAIN = _compile_all(EXPLAIN)
C_ADVICE = _compile_all(ADVICE)
C_HEDGES = _compile_all(HEDGES)
C_OPENERS = _compile_all(OPENERS)
C_VERDICTS = _compile_all(VERDICTS)
C_GENERAL = _compile_all(GENERAL_EXPLAIN)
C_FAQ_Q = [compile_template(q) for q, _ in FAQ]
FAQ_TOPIC = [t for _, t in FAQ]


# --------------------------------------------------------------------------
# Fictitious per-domain profile
# --------------------------------------------------------------------------

REGISTRARS = ("Namecheap", "GoDaddy", "Tucows", "Gandi", "OVHcloud", "Porkbun", "NameSilo",
              "IONOS", "Dynadot", "Hostinger", "Alibaba Cloud", "PDR Ltd.", "Key-Systems")
ISSUERS = ("Let's Encrypt", "DigiCert", "Sectigo", "GlobalSign", "Google Trust Services",
           "ZeroSSL", "GoDaddy", "Entrust")
REVIEW_SITES = ("Trustpilot", "Google Reviews", "Sitejabber", "the Better Business Bureau",
                "Reviews.io", "Reddit threads")
THEMES = ("late or missing deliveries", "refunds that never arrive", "unexpected recurring charges",
          "poor customer service", "counterfeit products", "difficult cancellations",
          "items not matching the description", "hidden shipping fees", "unresponsive support",
          "account lockouts", "withdrawal delays", "aggressive upselling")
BLOCKLISTS = ("Google Safe Browsing", "PhishTank", "OpenPhish", "Spamhaus DBL", "URLhaus",
              "SURBL", "Netcraft")
# (country, business registry, privacy law, matching country-code TLD)
COUNTRIES = (
    ("the United Kingdom", "Companies House register", "UK GDPR", ".co.uk"),
    ("the United States", "Delaware Division of Corporations registry", "the CCPA", ".us"),
    ("the United States", "California Secretary of State business registry", "the CCPA", ".us"),
    ("Germany", "Handelsregister", "the GDPR", ".de"),
    ("Canada", "Corporations Canada registry", "PIPEDA", ".ca"),
    ("Australia", "ASIC company register", "the Australian Privacy Act", ".com.au"),
    ("the Netherlands", "KvK business register", "the GDPR", ".nl"),
    ("Ireland", "Companies Registration Office register", "the GDPR", ".ie"),
    ("Singapore", "ACRA BizFile register", "the PDPA", ".sg"),
)
CC_TLDS = tuple(c[3] for c in COUNTRIES)
HOSTS = {
    "cdn": ("Cloudflare", "Fastly", "Akamai", "Amazon CloudFront"),
    "cloud": ("Amazon Web Services", "Google Cloud", "Microsoft Azure", "DigitalOcean", "Hetzner", "OVHcloud"),
    "shared": ("a budget shared host", "Namecheap shared hosting", "an offshore bulletproof host",
               "Hostinger shared hosting", "a reseller hosting account"),
}
CMSES = ("WordPress with WooCommerce", "Shopify", "Magento 2", "PrestaShop", "Wix", "Squarespace",
         "OpenCart", "Drupal", "a custom React storefront")
SERVERS = ("Apache/2.4.29", "nginx/1.14.0", "Microsoft-IIS/8.5", "LiteSpeed", "PHP/7.2.24")
PAY_STANDARD = ("Visa and Mastercard", "PayPal", "Apple Pay", "Stripe checkout", "Klarna", "American Express")
PAY_RISKY = ("bank transfer", "Bitcoin", "USDT", "gift cards", "Western Union", "Zelle")
OUTLETS = ("a regional business journal", "a trade publication covering the {sector} industry",
           "a national newspaper's consumer section", "a technology news site", "a local TV consumer segment",
           "a podcast about small businesses")


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def make_profile(domain: str, brand: str, sector: str, rng: Random) -> dict:
    """Draw a consistent set of fictitious facts about one domain."""
    # Latent "legitimacy" drives most signals so answers stay coherent.
    legit = rng.random()
    noisy = lambda: min(1.0, max(0.0, legit + rng.gauss(0, 0.22)))

    st: dict[str, str] = {}
    # WHOIS
    if noisy() > 0.55:
        age_months = rng.randint(8 * 12, 26 * 12)
    elif noisy() > 0.3:
        age_months = rng.randint(24, 8 * 12 - 1)
    else:
        age_months = rng.randint(1, 23)
    st["whois"] = "old" if age_months >= 96 else ("mid" if age_months >= 24 else "new")
    created_idx = REF_YEAR * 12 + 5 - age_months
    created = f"{MONTHS[created_idx % 12]} {created_idx // 12}"
    if age_months < 24:
        age_phrase = f"{age_months} month{'s' if age_months != 1 else ''}" if age_months < 12 else \
            ("about a year" if age_months < 18 else "about a year and a half")
    else:
        years = age_months // 12
        age_phrase = f"{rng.choice(('about', 'roughly', 'more than', 'around'))} {years} years"
    whois_private = rng.random() < 0.6
    privacy_clause = rng.choice((", with registrant details hidden behind a privacy service",
                                 ", and the registrant is hidden by WHOIS privacy",
                                 ", with the owner's identity redacted")) if whois_private else \
        rng.choice((", and the registrant organisation matches the business name",
                    ", with the registrant listed as the operating company"))

    v = noisy()
    st["tls"] = "good" if v > 0.5 else ("ok" if v > 0.18 else "bad")
    # reference date is June REF_YEAR: valid certificates expire after it, broken ones before
    exp_idx = REF_YEAR * 12 + 5 + (rng.randint(-14, -1) if st["tls"] == "bad" else rng.randint(1, 13))
    cert_expiry = f"{MONTHS[exp_idx % 12]} {exp_idx // 12}"

    rating_base = 1.2 + 3.6 * noisy()
    rating = f"{min(4.9, max(1.1, rating_base + rng.gauss(0, 0.25))):.1f}"
    review_count = int(math.exp(rng.uniform(1.0, 9.0)))
    if review_count < 15:
        st["reviews"] = "few"
    else:
        r = float(rating)
        st["reviews"] = "positive" if r >= 4.0 else ("mixed" if r >= 2.8 else "negative")

    v = noisy()
    st["complaints"] = "none" if v > 0.6 else ("some" if v > 0.25 else "many")
    complaint_count = {"none": 0, "some": rng.randint(3, 40), "many": rng.randint(45, 900)}[st["complaints"]]
    st["phishing"] = "clean" if noisy() > 0.15 else "reported"
    st["registration"] = "found" if noisy() > 0.35 else "notfound"
    v = noisy()
    st["privacy"] = "good" if v > 0.55 else ("weak" if v > 0.2 else "missing")
    v = noisy()
    st["contact"] = "full" if v > 0.55 else ("partial" if v > 0.22 else "none")
    v = rng.random()
    st["hosting"] = "cdn" if v < 0.4 else ("cloud" if v < 0.7 else "shared")
    if st["hosting"] == "shared" and legit > 0.6:
        st["hosting"] = "cloud"
    v = noisy()
    st["email"] = "full" if v > 0.6 else ("partial" if v > 0.3 else "none")
    st["headers"] = "strong" if noisy() > 0.65 else "weak"
    v = rng.random()
    st["cms"] = "unknown" if v < 0.2 else ("outdated" if noisy() < 0.4 else "current")
    st["payment"] = "standard" if noisy() > 0.2 else "risky"
    st["social"] = "active" if noisy() > 0.45 else "sparse"
    v = noisy()
    st["news"] = "covered" if v > 0.75 else ("negative" if v < 0.12 else "none")
    st["pricing"] = "normal" if noisy() > 0.22 else "toogood"

    cc = [c for c in COUNTRIES if domain.endswith(c[3])] if domain.endswith(CC_TLDS) else []
    country, reg_body, privacy_law, _ = rng.choice(cc or COUNTRIES)
    themes = rng.sample(THEMES, 2)
    pays = rng.sample(PAY_STANDARD if st["payment"] == "standard" else PAY_RISKY, 2)
    sector_plural = sector + ("es" if sector.endswith(("s", "sh", "ch")) else "s")
    if sector.endswith("y") and not sector.endswith(("ay", "ey", "oy")):
        sector_plural = sector[:-1] + "ies"

    # Risk score 0..10 derived from the observable states.
    risk = 0.0
    risk += {"old": 0, "mid": 1, "new": 2.5}[st["whois"]]
    risk += {"good": 0, "ok": 0.5, "bad": 2}[st["tls"]]
    risk += {"positive": 0, "mixed": 1, "negative": 2, "few": 1}[st["reviews"]]
    risk += {"none": 0, "some": 0.5, "many": 1.5}[st["complaints"]]
    risk += {"clean": 0, "reported": 3}[st["phishing"]]
    risk += {"found": 0, "notfound": 1}[st["registration"]]
    risk += {"good": 0, "weak": 0.3, "missing": 1}[st["privacy"]]
    risk += {"full": 0, "partial": 0.4, "none": 1.2}[st["contact"]]
    risk += {"standard": 0, "risky": 2}[st["payment"]]
    risk += {"normal": 0, "toogood": 1.5}[st["pricing"]]
    score = max(0, min(10, round(risk * 0.75)))
    tier = "low" if score <= 3 else ("moderate" if score <= 6 else "high")

    ctx = {
        "domain": domain, "brand": brand, "sector": sector, "sector_plural": sector_plural,
        "a_sector": ("an " if sector[0] in "aeiou" else "a ") + sector,
        "created": created, "age_phrase": age_phrase, "privacy_clause": privacy_clause,
        "registrar": rng.choice(REGISTRARS), "issuer": rng.choice(ISSUERS),
        "tls_ver": "TLS 1.3" if st["tls"] == "good" else rng.choice(("TLS 1.2", "TLS 1.2 only")),
        "cert_expiry": cert_expiry, "rating": rating, "review_count": _fmt_int(review_count),
        "review_site": rng.choice(REVIEW_SITES), "theme1": themes[0], "theme2": themes[1],
        "complaint_count": _fmt_int(complaint_count), "phish_count": str(rng.randint(2, 60)),
        "blocklist": rng.choice(BLOCKLISTS), "reg_body": reg_body,
        "reg_number": f"{rng.randint(10_000_000, 99_999_999)}", "country": country,
        "privacy_law": privacy_law, "policy_year": str(rng.randint(REF_YEAR - 6, REF_YEAR)),
        "host": rng.choice(HOSTS[st["hosting"]]), "cms": rng.choice(CMSES), "server": rng.choice(SERVERS),
        "dmarc": rng.choice(("reject", "quarantine")), "payment1": pays[0], "payment2": pays[1],
        "followers": _fmt_int(int(math.exp(rng.uniform(3.0, 11.0)))),
        "outlet": rng.choice(OUTLETS).replace("{sector}", sector),
        "discount": f"{rng.choice((60, 70, 75, 80, 85, 90))}%",
        "score": str(score), "trust_score": str(10 - score),
    }
    return {"ctx": ctx, "states": st, "tier": tier, "score": score}


# --------------------------------------------------------------------------
# Answer composition
# --------------------------------------------------------------------------

class Pool:
    """Draw templates without replacement, refilling (reshuffled) when empty."""

    __slots__ = ("items", "rng", "bag")

    def __init__(self, items: list, rng: Random):
        self.items = items
        self.rng = rng
        self.bag: list = []

    def draw(self):
        if not self.bag:
            self.bag = list(self.items)
            self.rng.shuffle(self.bag)
        return self.bag.pop()


class Writer:
    """Per-answer state: pools for facts/explanations/advice and word count."""

    def __init__(self, prof: dict, ptype: str, rng: Random):
        self.p = prof
        self.ctx = dict(prof["ctx"], ptype=ptype)
        self.ptype = ptype
        self.rng = rng
        self.st = prof["states"]
        self._fact_pools: dict[str, Pool] = {}
        self._expl_pools: dict[str, Pool] = {}
        self.advice = Pool(C_ADVICE, rng)
        self.hedges = Pool(C_HEDGES, rng)
        self.general = Pool(C_GENERAL, rng)
        core = list(PROMPT_TOPICS[ptype])
        head, tail = core[:4], core[4:]
        rng.shuffle(head)
        rng.shuffle(tail)
        self.topics = head + tail

    def r(self, tpl) -> str:
        return render(tpl, self.ctx, self.rng)

    def fact(self, topic: str) -> str:
        pool = self._fact_pools.get(topic)
        if pool is None:
            pool = self._fact_pools[topic] = Pool(C_FACTS[topic][self.st[topic]], self.rng)
        return self.r(pool.draw())

    def explain(self, topic: str | None) -> str:
        if topic is None:
            return self.r(self.general.draw())
        pool = self._expl_pools.get(topic)
        if pool is None:
            pool = self._expl_pools[topic] = Pool(C_EXPLAIN[topic], self.rng)
        return self.r(pool.draw())

    def verdict(self) -> str:
        return self.r(self.rng.choice(C_VERDICTS[self.p["tier"]]))

    def tip(self) -> str:
        return self.r(self.advice.draw())

    def hedge(self) -> str:
        return self.r(self.hedges.draw())

    def opener(self, model: str) -> str:
        return self.r(self.rng.choice(C_OPENERS[model]))


def wc(s: str) -> int:
    return s.count(" ") + 1


# ---- claude: prose paragraphs, hedging, occasional short list ----

def build_claude(w: Writer, target: int) -> str:
    rng = w.rng
    paras: list[str] = []
    n = 0
    if rng.random() < 0.85:
        s = w.opener("claude")
        paras.append(s)
        n += wc(s)
    topics = w.topics
    i = 0
    closing_budget = 45
    while n < target - closing_budget and i < len(topics):
        sent = [w.fact(topics[i])]
        if rng.random() < 0.55:
            sent.append(w.explain(topics[i]))
        if i + 1 < len(topics) and rng.random() < 0.4:
            i += 1
            sent.append(w.fact(topics[i]))
        if rng.random() < 0.25:
            sent.append(w.hedge())
        para = " ".join(sent)
        paras.append(para)
        n += wc(para)
        i += 1
    while n < target - closing_budget:
        para = " ".join([w.explain(None), w.explain(rng.choice(topics))])
        paras.append(para)
        n += wc(para)
    closing = [w.verdict()]
    if rng.random() < 0.5 and n < target + 40:
        tips = [w.tip() for _ in range(rng.randint(2, 4))]
        paras.append(" ".join(closing))
        paras.append("If you do decide to use it, a few precautions:\n\n" + "\n".join(f"- {t}" for t in tips))
    else:
        if rng.random() < 0.6:
            closing.append(w.tip())
        closing.append(w.hedge())
        paras.append(" ".join(closing))
    return "\n\n".join(paras)


# ---- gpt-4o: markdown headings, bold labels, bullet lists ----

def build_gpt(w: Writer, target: int) -> str:
    rng = w.rng
    out: list[str] = []
    n = 0
    title = {"trustworthiness": "Trustworthiness", "reputation": "Reputation", "security": "Security"}[w.ptype]
    if rng.random() < 0.6:
        out.append(f"## {title} Assessment: {w.ctx['domain']}")
    s = w.opener("gpt-4o")
    out.append(s)
    n += wc(s) + 4
    out.append(rng.choice(("### Key Findings", "### 🔍 Key Findings", "### Summary of Signals", "### What I Checked")))
    bullets = []
    closing_budget = 70
    for topic in w.topics:
        if n >= target - closing_budget:
            break
        b = f"- **{TOPIC_LABELS[topic]}:** {w.fact(topic)}"
        if rng.random() < 0.3:
            b += " " + w.explain(topic)
        bullets.append(b)
        n += wc(b)
    out.append("\n".join(bullets))
    extra = []
    while n < target - closing_budget:
        s = w.explain(rng.choice(w.topics[:6]) if rng.random() < 0.6 else None)
        extra.append(s)
        n += wc(s)
    if extra:
        out.append(rng.choice(("### What This Means", "### Context", "### Things to Keep in Mind")))
        chunks = [" ".join(extra[k:k + 3]) for k in range(0, len(extra), 3)]
        out.extend(chunks)
    out.append(rng.choice(("### Recommendations", "### ✅ Recommendations", "### Tips Before You Proceed")))
    out.append("\n".join(f"{k + 1}. {w.tip()}" for k in range(rng.randint(2, 4))))
    out.append(rng.choice(("### Verdict", "### Conclusion", "### Bottom Line")))
    v = w.verdict()
    if rng.random() < 0.5:
        v += f"\n\n**Overall trust score: {w.ctx['trust_score']}/10**"
    out.append(v)
    return "\n\n".join(out)


# ---- deepseek: terse, key-value lines, numbered points ----

def _kv(w: Writer, topic: str) -> str:
    st, c = w.st[topic], w.ctx
    short = {
        "tls": {"good": f"valid ({c['issuer']}, {c['tls_ver']}, HSTS)", "ok": f"valid ({c['issuer']}), no HSTS",
                "bad": "invalid/expired certificate"},
        "whois": {"old": f"registered {c['created']} ({c['registrar']})", "mid": f"registered {c['created']}",
                  "new": f"registered {c['created']} — new"},
        "reviews": {"positive": f"{c['rating']}/5, {c['review_count']} reviews ({c['review_site']})",
                    "mixed": f"{c['rating']}/5, mixed; complaints about {c['theme1']}",
                    "negative": f"{c['rating']}/5, mostly negative",
                    "few": f"only {c['review_count']} reviews"},
        "complaints": {"none": "none significant", "some": f"{c['complaint_count']} ({c['theme1']})",
                       "many": f"{c['complaint_count']}, unresolved ({c['theme1']})"},
        "phishing": {"clean": "no blocklist hits", "reported": f"{c['phish_count']} reports, listed on {c['blocklist']}"},
        "registration": {"found": f"{c['reg_body']} #{c['reg_number']}", "notfound": "not verifiable"},
        "privacy": {"good": f"present, updated {c['policy_year']}", "weak": f"generic ({c['policy_year']})",
                    "missing": "missing"},
        "contact": {"full": f"address in {c['country']}, phone, email", "partial": "email/form only",
                    "none": "none"},
        "hosting": {"cdn": c["host"], "cloud": c["host"], "shared": f"{c['host']} (shared)"},
        "email": {"full": f"SPF+DKIM+DMARC p={c['dmarc']}", "partial": "SPF only / weak DMARC", "none": "no SPF/DMARC"},
        "headers": {"strong": "CSP, XFO, nosniff present", "weak": "CSP/XFO missing"},
        "cms": {"current": f"{c['cms']}, current", "outdated": f"{c['cms']}, outdated", "unknown": "unknown"},
        "payment": {"standard": f"{c['payment1']}, {c['payment2']}",
                    "risky": f"{c['payment1']}/{c['payment2']} only — no buyer protection"},
        "social": {"active": f"active ({c['followers']} followers)", "sparse": "sparse"},
        "news": {"covered": "independent coverage exists", "none": "none", "negative": "negative coverage"},
        "pricing": {"normal": "market-rate", "toogood": f"up to {c['discount']} off — unrealistic"},
    }
    return f"{TOPIC_LABELS[topic]}: {short[topic][st]}"


def build_deepseek(w: Writer, target: int) -> str:
    rng = w.rng
    tier = w.p["tier"]
    out: list[str] = []
    verdict_word = rng.choice(TIER_SHORT[tier])
    head = w.opener("deepseek")
    if rng.random() < 0.5:
        head += f" Verdict: {verdict_word}."
        top_verdict = True
    else:
        top_verdict = False
    out.append(head)
    n = wc(head)
    kv_lines = []
    k = rng.randint(4, 7)
    for topic in w.topics[:k]:
        line = "- " + _kv(w, topic)
        kv_lines.append(line)
        n += wc(line)
    out.append(rng.choice(("Signals:", "Key signals:", "Checks:", "Findings:")) + "\n" + "\n".join(kv_lines))
    points = []
    j = 0
    closing_budget = 25
    topics = w.topics
    while n < target - closing_budget:
        if j < len(topics):
            s = w.fact(topics[j])
        else:
            s = w.explain(rng.choice(topics) if rng.random() < 0.7 else None)
        j += 1
        points.append(s)
        n += wc(s)
    if points:
        out.append("\n".join(f"{i + 1}. {p}" for i, p in enumerate(points)))
    tail = f"Risk score: {w.ctx['score']}/10."
    if not top_verdict:
        tail = f"Verdict: {verdict_word}. " + tail
    if rng.random() < 0.6:
        tail += " " + rng.choice(("Recommendation: ", "Advice: ", "Action: ")) + w.tip()
    out.append(tail)
    return "\n\n".join(out)


# ---- long reports (1,000-4,000 words), styled per model ----

def build_long(w: Writer, model: str, target: int) -> str:
    rng = w.rng
    out: list[str] = []
    ctx = w.ctx

    def heading(text: str, level: int = 2) -> str:
        if model == "gpt-4o":
            return "#" * (level + 1) + " " + text
        if model == "deepseek":
            return "#" * level + " " + text
        return f"**{text}**"

    title = f"{ctx['ptype'].capitalize()} report: {ctx['domain']}"
    out.append(heading(title, 1))
    intro = [w.opener(model)]
    if model == "claude":
        intro.append("Because you asked for a thorough review, I'll go through each area in some detail and explain why it matters, then give an overall assessment and a checklist you can use yourself.")
    else:
        intro.append(rng.choice((
            "This report covers each signal in turn, explains how to interpret it, and ends with a verdict and a verification checklist.",
            "Detailed analysis follows, section by section, with a summary at the end.",
        )))
    out.append(" ".join(intro))
    n = sum(wc(s) for s in out)

    topics = list(w.topics)
    extra = [t for t in TOPIC_LABELS if t not in topics]
    rng.shuffle(extra)
    topics += extra
    closing_reserve = 220
    per_section = max(4, int((target - closing_reserve - n) / (len(topics) * 22)))
    sec = 0
    rounds = 0
    while n < target - closing_reserve and rounds < 4:
        for topic in topics:
            if n >= target - closing_reserve:
                break
            sec += 1
            label = TOPIC_LABELS[topic] if rounds == 0 else f"{TOPIC_LABELS[topic]} (continued)"
            h = heading(f"{sec}. {label}" if model != "claude" else label, 2)
            body: list[str] = []
            k = max(2, per_section + rng.randint(-2, 2))
            sents = [w.fact(topic) if rounds == 0 or rng.random() < 0.3 else w.explain(topic)]
            for _ in range(k - 1):
                r = rng.random()
                if r < 0.6:
                    sents.append(w.explain(topic))
                elif r < 0.75:
                    sents.append(w.explain(None))
                elif r < 0.88 and model == "claude":
                    sents.append(w.hedge())
                elif rounds == 0:
                    sents.append(w.fact(topic))
                else:
                    sents.append(w.tip())
            # split into paragraphs (or bullets for gpt-4o)
            if model == "gpt-4o" and rng.random() < 0.5:
                body.append(sents[0])
                body.append("\n".join(f"- {s}" for s in sents[1:]))
            else:
                step = rng.randint(2, 4)
                body.extend(" ".join(sents[a:a + step]) for a in range(0, len(sents), step))
            out.append(h)
            out.extend(body)
            n += wc(h) + sum(wc(b) for b in body)
        rounds += 1
        if n < target - closing_reserve:
            # an FAQ or a scam-pattern interlude between rounds
            if rounds % 2 == 1:
                out.append(heading("Frequently asked questions", 2))
                for qi in rng.sample(range(len(FAQ)), 4):
                    t = FAQ_TOPIC[qi]
                    a = w.verdict() if t == "verdict" else w.fact(t)
                    qa = f"**Q: {w.r(C_FAQ_Q[qi])}**\n{a} {w.explain(None if t == 'verdict' else t)}"
                    out.append(qa)
                    n += wc(qa)
            else:
                out.append(heading(f"Common scam patterns among {ctx['sector_plural']}", 2))
                para = " ".join(w.explain(None) for _ in range(5))
                out.append(para)
                n += wc(para) + 5
    out.append(heading("Verification checklist", 2))
    out.append("\n".join(f"{i + 1}. {w.tip()}" for i in range(rng.randint(6, 10))))
    out.append(heading("Overall assessment", 2))
    concl = [w.verdict()]
    if model == "deepseek":
        concl.append(f"Risk score: {ctx['score']}/10.")
    elif model == "gpt-4o":
        concl.append(f"**Overall trust score: {ctx['trust_score']}/10**")
    else:
        concl.append(w.hedge())
    out.append(" ".join(concl))
    return "\n\n".join(out)


BUILDERS = {"claude": build_claude, "gpt-4o": build_gpt, "deepseek": build_deepseek}
# log-normal length targets (median words, sigma) per model
LENGTH = {"claude": (185, 0.48), "gpt-4o": (215, 0.45), "deepseek": (115, 0.45)}
PROMPT_LEN = {"trustworthiness": 1.0, "reputation": 0.95, "security": 1.08}


def make_response(prof: dict, model: str, ptype: str, rng: Random) -> str:
    if rng.random() < REFUSAL_FRACTION:
        return rng.choice(REFUSALS)
    w = Writer(prof, ptype, rng)
    if rng.random() < LONG_FRACTION:
        target = int(1000 * 4 ** rng.random())  # log-uniform 1,000..4,000
        return build_long(w, model, target)
    med, sigma = LENGTH[model]
    target = int(rng.lognormvariate(math.log(med * PROMPT_LEN[ptype]), sigma))
    target = max(40, min(target, 750))
    return BUILDERS[model](w, target)


# --------------------------------------------------------------------------
# Counts and record stream
# --------------------------------------------------------------------------

def per_domain_counts(n_domains: int, total: int, rng: Random) -> list[int]:
    lo = MIN_PER_DOMAIN
    hi = MAX_PER_DOMAIN
    if n_domains <= 0:
        return []
    avg = total / n_domains
    lo = max(len(COMBOS), min(lo, math.floor(avg)))
    hi = max(hi, math.ceil(avg))
    if total < lo * n_domains or total > hi * n_domains:
        raise ValueError(f"cannot place {total} responses on {n_domains} domains "
                         f"with {lo}..{hi} per domain")
    sd = (hi - lo) / 4.5
    counts = [max(lo, min(hi, round(rng.gauss(avg, sd)))) for _ in range(n_domains)]
    diff = total - sum(counts)
    while diff != 0:
        i = rng.randrange(n_domains)
        if diff > 0 and counts[i] < hi:
            counts[i] += 1
            diff -= 1
        elif diff < 0 and counts[i] > lo:
            counts[i] -= 1
            diff += 1
    return counts


def _combo_plan(count: int, rng: Random) -> list[tuple[str, str]]:
    """``count`` (model, prompt_type) slots: every combo at least once."""
    plan = list(COMBOS)
    weights = [1.0 + rng.random() for _ in COMBOS]
    plan += rng.choices(COMBOS, weights=weights, k=count - len(COMBOS))
    order = {c: i for i, c in enumerate(COMBOS)}
    plan.sort(key=order.__getitem__)
    return plan


def base_records(n_domains: int, seed: int, total: int | None = None) -> Iterator[dict]:
    """Yield the records of the base data set (no scaling), grouped by domain."""
    if total is None:
        total = total_for(n_domains)
    master = Random(seed)
    domains = make_domains(n_domains, master)
    counts = per_domain_counts(n_domains, total, Random(f"{seed}:counts"))
    for idx, ((domain, brand, sector), count) in enumerate(zip(domains, counts), start=1):
        rng = Random(f"{seed}:domain:{idx}")
        prof = make_profile(domain, brand, sector, rng)
        seen: dict[tuple[str, str], int] = {}
        for model, ptype in _combo_plan(count, rng):
            k = seen[(model, ptype)] = seen.get((model, ptype), 0) + 1
            yield {
                "id": f"d{idx:04d}-{model}-{PROMPT_ABBR[ptype]}-{k}",
                "domain": domain,
                "model": model,
                "prompt_type": ptype,
                "response": make_response(prof, model, ptype, rng),
            }


def _suffix_domain(domain: str, copy: int) -> str:
    name, dot, rest = domain.partition(".")
    return f"{name}-s{copy}{dot}{rest}"


def generate_records(n_domains: int = DEFAULT_DOMAINS, seed: int = DEFAULT_SEED,
                     total: int | None = None, scale: int = 1) -> Iterator[dict]:
    """All records; with ``scale`` K > 1, K copies (copies 2..K get suffixed
    domain names, renumbered ids, and the domain name replaced in the text)."""
    if scale < 1:
        raise ValueError("scale must be >= 1")
    base = list(base_records(n_domains, seed, total)) if scale > 1 else None
    if base is None:
        yield from base_records(n_domains, seed, total)
        return
    width = max(4, len(str(n_domains * scale)))
    for copy in range(1, scale + 1):
        offset = (copy - 1) * n_domains
        for rec in base:
            head, rest = rec["id"].split("-", 1)
            didx = int(head[1:])
            if copy == 1:
                dom, text = rec["domain"], rec["response"]
            else:
                dom = _suffix_domain(rec["domain"], copy)
                text = rec["response"].replace(rec["domain"], dom)
            yield {"id": f"d{offset + didx:0{width}d}-{rest}", "domain": dom, "model": rec["model"],
                   "prompt_type": rec["prompt_type"], "response": text}


def encode(rec: dict) -> bytes:
    return (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")


def write(path: str, records: Iterable[dict], level: int = 9) -> int:
    """Write records as deterministic gzip JSON Lines; return the line count."""
    n = 0
    tmp = path + ".tmp"
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0) as gz:
            buf: list[bytes] = []
            for rec in records:
                buf.append(encode(rec))
                n += 1
                if len(buf) >= 512:
                    gz.write(b"".join(buf))
                    buf.clear()
            if buf:
                gz.write(b"".join(buf))
    os.replace(tmp, path)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output .jsonl.gz path (default: %(default)s)")
    ap.add_argument("--domains", type=int, default=DEFAULT_DOMAINS, help="number of domains (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    ap.add_argument("--responses", type=int, default=None,
                    help="total responses (default: 16,350 scaled to --domains, i.e. 36.8 per domain)")
    ap.add_argument("--scale", type=int, default=1,
                    help="write K copies of the data set, copies 2..K with suffixed domain names")
    ap.add_argument("--quiet", action="store_true", help="no summary on stderr")
    args = ap.parse_args(argv)
    if args.domains < 1:
        ap.error("--domains must be >= 1")
    t0 = time.perf_counter()
    try:
        n = write(args.out, generate_records(args.domains, args.seed, args.responses, args.scale))
    except ValueError as e:
        ap.error(str(e))
    dt = time.perf_counter() - t0
    if not args.quiet:
        print(f"wrote {n} responses for {args.domains * args.scale} domains to {args.out} "
              f"({os.path.getsize(args.out):,} bytes) in {dt:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
