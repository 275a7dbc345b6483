"""A contact's recent activity as text: the one rendering that training and scoring share.

The role model reads ``activity_text``; the champion rule counts advocacy in the same window
of events. Keeping window selection, rendering and advocacy counting in one module means the
label, the baseline and the model all see exactly the same evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from buying_groups.taxonomy import ADVOCACY_KINDS, GENERAL_TOPIC

# An activity as the generator draws it, before it gets its id (data/generate.py, customers.py).
EVENT_COLUMNS = ["contact_id", "timestamp", "channel", "action", "asset", "topic"]

DEFAULT_MAX_EVENTS = 6
DEFAULT_MAX_CHARS = 600
WORKSHOP_PREFIX = "Hands-on workshop"


def recent_events(
    activities: pd.DataFrame,
    as_of: pd.Timestamp | str | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> pd.DataFrame:
    """The newest ``max_events`` events of each contact at or before ``as_of``, newest first.

    Ties on timestamp are broken by ``activity_id`` so the window is deterministic.
    """
    df = activities
    if as_of is not None:
        df = df[df["timestamp"] <= pd.Timestamp(as_of)]
    df = df.sort_values(
        ["contact_id", "timestamp", "activity_id"], ascending=[True, False, False], kind="stable"
    )
    return df.groupby("contact_id", sort=False).head(max_events)


def advocacy_kind(events: pd.DataFrame) -> pd.Series:
    """The advocacy kind of each event (one of ``ADVOCACY_KINDS``) or None."""
    action = events["action"].astype(object)
    workshop = (action == "attended") & events["asset"].astype(str).str.startswith(WORKSHOP_PREFIX)
    kind = action.where(action.isin(ADVOCACY_KINDS), None)
    kind = kind.mask(workshop, "attended_workshop")
    return kind


def describe_events(events: pd.DataFrame) -> pd.Series:
    """One short phrase per event, e.g. ``attended webinar "Zero trust"`` or
    ``requested demo (security_platform)`` (the product is named where the asset does not)."""
    action = events["action"].astype(str).to_numpy()
    asset = events["asset"].fillna("").astype(str).to_numpy()
    topic = events["topic"].fillna(GENERAL_TOPIC).astype(str).to_numpy()
    channel = events["channel"].astype(str).to_numpy()
    quoted = np.char.add(np.char.add('"', asset.astype(str)), '"')
    is_page = np.char.startswith(asset.astype(str), "/")
    workshop = np.char.startswith(asset.astype(str), WORKSHOP_PREFIX)
    obj = np.where(is_page, asset, quoted)
    verb = np.char.replace(action.astype(str), "_", " ")
    # Actions without a telling asset name their product: "requested demo (data_platform)".
    bare = np.isin(
        action,
        [
            "requested_demo",
            "started_trial",
            "requested_pricing",
            "invited_colleague",
            "met_sales",
            "logged_in",
        ],
    ) | ((action == "attended") & workshop)
    text = np.select(
        [
            bare & (action == "attended"),
            bare,
            np.isin(action, ["opened", "clicked"]) & (channel == "email"),
            action == "registered",
            action == "attended",
        ],
        [
            "attended hands-on workshop",
            verb,
            np.char.add(np.char.add(verb, " email "), quoted),
            np.char.add("registered for webinar ", obj.astype(str)),
            np.char.add("attended webinar ", obj.astype(str)),
        ],
        default=np.char.add(np.char.add(verb, " "), obj),
    )
    named = bare & (topic != GENERAL_TOPIC)
    text = np.where(named, np.char.add(np.char.add(np.char.add(text, " ("), topic), ")"), text)
    return pd.Series(text, index=events.index, dtype=object)


def render_activity_text(
    activities: pd.DataFrame,
    contact_ids: pd.Series | pd.Index | None = None,
    as_of: pd.Timestamp | str | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> pd.Series:
    """Render each contact's recent events (newest first, ``; ``-separated) as text.

    Returns a Series indexed by contact_id; contacts without events (or given in
    ``contact_ids`` but absent from ``activities``) get ``""``. The text is cut at an event
    boundary so that it never exceeds ``max_chars``.
    """
    window = recent_events(activities, as_of=as_of, max_events=max_events)
    if window.empty:  # nobody has an event yet
        ids = pd.Index([] if contact_ids is None else contact_ids, name="contact_id")
        return pd.Series("", index=ids, dtype=object)
    phrases = describe_events(window)
    # Cumulative length per contact, to drop whole events past max_chars (newest kept).
    lengths = phrases.str.len() + 2
    cum = lengths.groupby(window["contact_id"].to_numpy(), sort=False).cumsum()
    keep = (cum - 2 <= max_chars) | (window.groupby("contact_id", sort=False).cumcount() == 0)
    phrases = phrases[keep.to_numpy()]
    ids = window["contact_id"].to_numpy()[keep.to_numpy()]
    text = phrases.groupby(ids, sort=False).agg("; ".join).str.slice(0, max_chars)
    if contact_ids is not None:
        text = text.reindex(pd.Index(contact_ids), fill_value="")
    text.index.name = "contact_id"
    return text.astype(object)


def advocacy_counts(
    activities: pd.DataFrame,
    products: list[str] | tuple[str, ...],
    contact_ids: pd.Series | pd.Index | None = None,
    as_of: pd.Timestamp | str | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> pd.DataFrame:
    """Distinct advocacy kinds per contact and product within the rendered event window.

    One row per contact in ``contact_ids`` (default: every contact with events).
    """
    window = recent_events(activities, as_of=as_of, max_events=max_events)
    kind = advocacy_kind(window)
    adv = pd.DataFrame(
        {"contact_id": window["contact_id"], "topic": window["topic"], "kind": kind}
    ).dropna(subset=["kind"])
    adv = adv[adv["topic"].isin(products)]
    counts = (
        adv.drop_duplicates()
        .groupby(["contact_id", "topic"])
        .size()
        .unstack("topic")
        .reindex(columns=list(products))
        .fillna(0)
        .astype(int)
    )
    if contact_ids is None:
        contact_ids = window["contact_id"].unique()
    counts = counts.reindex(pd.Index(contact_ids), fill_value=0)
    counts.index.name = "contact_id"
    counts.columns.name = None
    return counts
