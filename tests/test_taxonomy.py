import numpy as np
import pytest

from buying_groups.taxonomy import ROLES, SENIORITIES, Catalog, assign_roles, seniority_rank


@pytest.fixture
def security(catalog: Catalog):
    return catalog["security_platform"]


@pytest.mark.parametrize(
    ("function", "seniority", "advocacy", "role"),
    [
        ("security", "vp", 0, "decision_maker"),  # rule 1: primary, top
        ("information_technology", "executive", 0, "decision_maker"),
        ("security", "director", 0, "influencer"),  # rule 1: primary, middle
        ("security", "senior", 0, "end_user"),  # rule 1: primary, IC
        ("security", "professional", 2, "champion"),  # rule 1: advocacy makes a champion
        ("security", "vp", 3, "champion"),
        ("security", "entry", 2, "end_user"),  # entry level cannot champion
        ("security", "senior", 1, "end_user"),  # one kind of advocacy is not enough
        ("executive", "executive", 0, "decision_maker"),  # rule 2
        ("procurement", "manager", 0, "gatekeeper"),  # rule 3
        ("legal", "professional", 5, "gatekeeper"),  # legal is adjacent AND gatekeeper: 3 wins
        ("administrative", "entry", 0, "none"),  # rule 3: entry-level gatekeepers are none
        ("engineering", "director", 0, "influencer"),  # rule 4: adjacent, manager+
        ("engineering", "senior", 2, "none"),  # rule 4: adjacent IC, advocacy irrelevant
        ("finance", "vp", 0, "influencer"),  # rule 5
        ("finance", "manager", 0, "none"),
        ("marketing", "vp", 0, "none"),  # rule 6
    ],
)
def test_role_rules(security, function, seniority, advocacy, role):
    got = assign_roles(np.array([function]), np.array([seniority]), np.array([advocacy]), security)
    assert got[0] == role


def test_security_outside_its_product_is_a_gatekeeper(catalog):
    got = assign_roles(["security"], ["director"], [0], catalog["marketing_automation"])
    assert got[0] == "gatekeeper"


def test_rules_cover_every_function_and_seniority(catalog):
    from buying_groups.taxonomy import FUNCTIONS

    f = np.repeat(FUNCTIONS, len(SENIORITIES))
    s = np.tile(SENIORITIES, len(FUNCTIONS))
    for product in catalog.products:
        roles = assign_roles(f, s, np.zeros(len(f)), product)
        assert set(roles) <= set(ROLES)


def test_seniority_rank_is_ordered():
    assert list(seniority_rank(list(SENIORITIES))) == list(range(len(SENIORITIES)))
    assert seniority_rank(["nonsense"])[0] == -1


def test_catalog_rejects_unknown_functions():
    with pytest.raises(ValueError, match="unknown functions"):
        Catalog.from_config({"products": {"x": {"primary": ["wizardry"], "adjacent": []}}})


def test_action_names_as_exports_write_them_are_read_as_the_schemas():
    """HubSpot's and Marketo's own names ("Email Opened", "Click Link", "Fill Out Form");
    "Email Opened" read as an unknown action (interacted) before."""
    from buying_groups.taxonomy import ACTION_ALIASES, ACTIONS, canonical_key

    for written, action in (
        ("Email Opened", "opened"),
        ("Open Email", "opened"),
        ("Clicked Link", "clicked"),
        ("Fill Out Form", "downloaded"),
        ("Form submitted", "downloaded"),
        ("Webinar Attended", "attended"),
        ("Meeting Booked", "met_sales"),
    ):
        assert ACTION_ALIASES[canonical_key(written)] == action
    assert set(ACTION_ALIASES.values()) <= set(ACTIONS)
