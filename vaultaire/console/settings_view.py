"""The sections of a bucket's settings page, drawn from what S3 answered (vaultaire/console/settings.py
reads and changes them)."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen
from twisted.web.template import Tag

from vaultaire.console import documents, pages
from vaultaire.console.documents import PUBLIC_ACCESS_SWITCHES
from vaultaire.console.pages import shown, tags


@frozen
class Found:
    """A configuration read: its body, or None when the bucket has none; error when unreadable."""

    body: bytes | None
    error: str = ""


Section = Callable[..., Tag]


def tags_section(section: Section, form: Section, found: Found) -> Tag:
    pairs = documents.tags_of(found.body) if found.body else []
    rows = [
        [
            tags.code(shown(k)),
            shown(v),
            form(
                "tags",
                pages.hidden("action", "delete"),
                pages.hidden("tag", k),
                pages.button("Delete"),
                class_="inline",
            ),
        ]
        for k, v in pairs
    ]
    return section(
        "tags",
        "Tags",
        pages.table(["Key", "Value", ""], rows, id="bucket-tags") if rows else tags.p("No tags."),
        form(
            "tags",
            pages.hidden("action", "add"),
            tags.label("Key ", tags.input(type="text", name="tag", required="required")),
            " ",
            tags.label("Value ", tags.input(type="text", name="value")),
            " ",
            pages.button("Add tag"),
            id="add-tag",
        ),
    )


def lifecycle_section(
    section: Callable[..., Tag], form: Callable[..., Tag], draft: Callable[[str, str], str], found: Found
) -> Tag:
    rules = documents.plain(found.body).findall("Rule") if found.body else []
    rows = []
    for rule in rules:
        rule_id, status, scope, actions = documents.rule_summary(rule)
        rows.append(
            [
                tags.code(shown(rule_id)),
                status,
                shown(scope),
                shown(actions),
                form(
                    "lifecycle",
                    pages.hidden("action", "delete"),
                    pages.hidden("rule", rule_id),
                    pages.button("Delete", class_="delete-rule"),
                    class_="inline",
                ),
            ]
        )
    day = {"type": "number", "min": "0", "max": "36500"}
    return section(
        "lifecycle",
        "Lifecycle rules",
        pages.table(["Rule", "Status", "Applies to", "Does", ""], rows, id="rules") if rows else tags.p("No rules."),
        form(
            "lifecycle",
            pages.hidden("action", "add"),
            tags.p(
                tags.label("Rule name ", tags.input(type="text", name="rule", required="required", maxlength="255")),
                " ",
                tags.label("for keys starting with ", tags.input(type="text", name="prefix")),
            ),
            tags.p(
                tags.label("Delete objects after ", tags.input(name="expire_days", **day), " days"),
                "; ",
                tags.label("old versions after ", tags.input(name="noncurrent_days", **day), " days"),
                "; ",
                tags.label("unfinished uploads after ", tags.input(name="abort_days", **day), " days"),
            ),
            pages.button("Add rule"),
            id="add-rule",
        ),
        tags.details(**({"open": "open"} if draft("lifecycle", "") else {}))(
            tags.summary("Edit the rules as XML (for what the form above does not offer)"),
            form(
                "lifecycle",
                pages.hidden("action", "raw"),
                tags.textarea(name="document", rows="12", cols="90")(
                    draft("lifecycle", documents.pretty(found.body) if found.body else "")
                ),
                tags.br(),
                pages.button("Save XML"),
                id="lifecycle-xml",
            ),
        ),
        form("lifecycle", pages.hidden("action", "remove"), pages.button("Remove every rule")) if rows else "",
    )


def public_access_section(section: Section, form: Section, found: Found) -> Tag:
    on = set()
    if found.body:
        root = documents.plain(found.body)
        on = {name for name in PUBLIC_ACCESS_SWITCHES if (root.findtext(name) or "").strip() == "true"}
    boxes = []
    for name in PUBLIC_ACCESS_SWITCHES:
        box = tags.input(type="checkbox", name=name, value="true")
        if name in on:
            box.attributes["checked"] = "checked"
        boxes.append(tags.label(box, " ", name))
        boxes.append(tags.br())
    return section(
        "public-access-block",
        "Public access block",
        tags.p("Set: " + ("yes" if found.body else "no (nothing blocked by this bucket)")),
        form("public-access-block", *boxes, pages.button("Save", name="action", value="save")),
        form("public-access-block", pages.button("Remove", name="action", value="remove")) if found.body else "",
    )


def encryption_section(section: Section, form: Section, found: Found) -> Tag:
    algorithm = key = ""
    if found.body:
        root = documents.plain(found.body)
        algorithm = root.findtext("Rule/ApplyServerSideEncryptionByDefault/SSEAlgorithm") or ""
        key = root.findtext("Rule/ApplyServerSideEncryptionByDefault/KMSMasterKeyID") or ""
    options = []
    for value, label in (("AES256", "SSE-S3 (AES256)"), ("aws:kms", "SSE-KMS (aws:kms)")):
        option = tags.option(value=value)(label)
        if value == algorithm:
            option.attributes["selected"] = "selected"
        options.append(option)
    return section(
        "encryption",
        "Default encryption",
        tags.p(
            "New objects are encrypted by default with: ",
            tags.strong(id="encryption-state")(algorithm + (f" (key {key})" if key else "") if algorithm else "none"),
        ),
        form(
            "encryption",
            tags.label("Method ", tags.select(name="algorithm")(*options)),
            " ",
            tags.label("KMS key (aws:kms only) ", tags.input(type="text", name="kms_key", value=key)),
            " ",
            pages.button("Save", name="action", value="save"),
        ),
        form("encryption", pages.button("Remove", name="action", value="remove")) if found.body else "",
    )


def lock_section(section: Section, form: Section, found: Found) -> Tag:
    if not found.body:
        return section(
            "object-lock",
            "Object Lock",
            tags.p(
                tags.strong(id="lock-state")("Off"),
                ": objects can be deleted and overwritten. It is usually chosen when the bucket is made; "
                "an existing bucket needs versioning on first.",
            ),
            form("object-lock", pages.button("Turn Object Lock on", name="action", value="enable")),
        )
    root = documents.plain(found.body)
    mode = root.findtext("Rule/DefaultRetention/Mode") or ""
    days, years = root.findtext("Rule/DefaultRetention/Days"), root.findtext("Rule/DefaultRetention/Years")
    period = f"{days} days" if days else f"{years} years" if years else ""
    modes = [tags.option(value="")("none: new objects are not locked by default")]
    for value in ("GOVERNANCE", "COMPLIANCE"):
        option = tags.option(value=value)(value)
        if value == mode:
            option.attributes["selected"] = "selected"
        modes.append(option)
    units = []
    for value in ("Days", "Years"):
        option = tags.option(value=value)(value.lower())
        if (value == "Years") == bool(years):
            option.attributes["selected"] = "selected"
        units.append(option)
    return section(
        "object-lock",
        "Object Lock",
        tags.p(
            tags.strong(id="lock-state")("On"),
            "; default retention: ",
            tags.strong(id="lock-default")(f"{mode} for {period}" if mode else "none"),
        ),
        form(
            "object-lock",
            tags.label("Default retention ", tags.select(name="mode")(*modes)),
            " for ",
            tags.input(type="number", name="period", min="0", max="36500", value=days or years or ""),
            " ",
            tags.select(name="unit")(*units),
            " ",
            pages.button("Save", name="action", value="save"),
        ),
    )
