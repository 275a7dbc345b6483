import pandas as pd
import pytest

from buying_groups.data.activity import (
    advocacy_counts,
    describe_events,
    recent_events,
    render_activity_text,
)


@pytest.fixture
def events():
    rows = [
        ("E1", "c1", "2025-01-01", "email", "opened", "Monthly newsletter", "general"),
        ("E2", "c1", "2025-01-05", "web", "requested_demo", "Demo request form", "data_platform"),
        (
            "E3",
            "c1",
            "2025-01-07",
            "event",
            "attended",
            "Hands-on workshop: Data Platform",
            "data_platform",
        ),
        ("E4", "c1", "2025-02-01", "web", "visited", "/pricing", "data_platform"),
        (
            "E5",
            "c2",
            "2025-01-02",
            "event",
            "attended",
            "Zero trust in 30 minutes",
            "security_platform",
        ),
        ("E6", "c1", "2025-03-01", "web", "downloaded", "RFP template", "general"),
    ]
    df = pd.DataFrame(
        rows,
        columns=["activity_id", "contact_id", "timestamp", "channel", "action", "asset", "topic"],
    )
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    return df


def test_newest_first_and_bounded(events):
    text = render_activity_text(events, max_events=3)
    assert text["c1"] == (
        'downloaded "RFP template"; visited /pricing; attended hands-on workshop (data_platform)'
    )
    assert text["c2"] == 'attended webinar "Zero trust in 30 minutes"'


def test_as_of_hides_the_future(events):
    text = render_activity_text(events, as_of="2025-01-06")
    assert text["c1"].startswith("requested demo (data_platform)")
    assert "RFP" not in text["c1"] and "pricing" not in text["c1"]


def test_contacts_without_events_get_empty_text(events):
    text = render_activity_text(events, contact_ids=["c1", "c3"])
    assert text["c3"] == "" and list(text.index) == ["c1", "c3"]


def test_max_chars_cuts_at_event_boundaries(events):
    text = render_activity_text(events, max_chars=45)["c1"]
    assert len(text) <= 45 and text == 'downloaded "RFP template"; visited /pricing'


def test_advocacy_counts_use_the_same_window(events):
    adv = advocacy_counts(events, ["data_platform", "security_platform"], max_events=8)
    assert adv.loc["c1", "data_platform"] == 2  # demo + workshop
    assert adv.loc["c2", "security_platform"] == 0
    narrow = advocacy_counts(events, ["data_platform"], max_events=3)
    assert narrow.loc["c1", "data_platform"] == 1  # the demo fell out of the window


def test_describe_is_one_phrase_per_event(events):
    phrases = describe_events(events)
    assert len(phrases) == len(events)
    assert phrases.iloc[0] == 'opened email "Monthly newsletter"'


def test_window_is_deterministic_on_ties(events):
    tie = events.copy()
    tie["timestamp"] = pd.Timestamp("2025-01-01")
    a = recent_events(tie, max_events=2)
    b = recent_events(tie.sample(frac=1, random_state=3), max_events=2)
    assert list(a["activity_id"]) == list(b["activity_id"])
